#!/bin/sh
# greet NAME...: says the greeting the image was built with to each NAME
for name in "$@"; do echo "$(cat "$GREETER_HOME/word"), $name"; done
