#!/bin/sh
# Prints the greetings listed in README.md.
sed -n '/^## Greetings/,$p' "$(dirname "$0")/README.md" | grep '^Hello' || echo "No greetings yet."
