#!/bin/sh
# SPDX-License-Identifier: MIT
# test_examples_glib.sh: tests/test_examples.sh for examples/glib-sub.c,
# a test of its own so that without GLib (pkg-config glib-2.0) it alone
# is skipped (exit 77).
EXAMPLES=glib exec "${SHELL:-/bin/sh}" "$(dirname "$0")/test_examples.sh"
