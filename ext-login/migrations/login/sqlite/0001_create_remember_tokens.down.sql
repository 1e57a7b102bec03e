DROP TABLE flagon_login_remember;
