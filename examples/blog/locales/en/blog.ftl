# Shared by every page: navigation, footer, generic errors.
nav-home = Home
nav-search = Search
nav-write = Write
nav-admin = Admin
nav-login = Log in
nav-register = Register
nav-logout = Log out
footer-powered = Powered by Flagon.
