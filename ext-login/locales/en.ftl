login-required = Please log in to access this page.
login-needs-refresh = Please reauthenticate to access this page.
