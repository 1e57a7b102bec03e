dashboard = Dashboard
