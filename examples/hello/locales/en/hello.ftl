greet = Hello, { $name }!
