login-required = 请登录后访问此页面。
login-needs-refresh = 请重新验证身份后访问此页面。
