// AT lexer lives here.
