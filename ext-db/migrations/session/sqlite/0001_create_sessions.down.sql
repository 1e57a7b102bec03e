DROP TABLE flagon_sessions;
