"""What the front ends show: answers in the shapes of `--json` and the HTTP API, built once here
so the command line and the server say the same thing."""
