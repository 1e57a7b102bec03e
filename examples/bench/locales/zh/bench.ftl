dashboard = 仪表板
