"""The `monosweep` command: one module per subcommand (parse, call the library, print, exit code)."""
