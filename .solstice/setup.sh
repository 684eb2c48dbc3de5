#!/bin/sh
# Setup script of the KDL demo job: runs before its steps.
echo "setting up on $(uname -s)"
touch /tmp/solstice-setup-done
