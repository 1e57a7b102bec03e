# 每个页面共用：导航、页脚、通用错误。
nav-home = 首页
nav-search = 搜索
nav-write = 写文章
nav-admin = 管理
nav-login = 登录
nav-register = 注册
nav-logout = 退出
footer-powered = 由 Flagon 驱动。
