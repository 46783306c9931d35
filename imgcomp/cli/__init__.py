"""The `imgcomp` command: `main` (entry point, every command), `bag` and `multitask` (their sub-commands), `support` (parser and error handling)."""
