# SPDX-License-Identifier: MIT
# Included by Makefile.am: zcbus-bridge, the NATS bridge, and its test.
# Built only when configure found libnats (HAVE_NATS). Like the CLI it is
# a client of the public API: libbus/ is off its include path and it links
# libzcbus.la.
EXTRA_DIST += tests/test_bridge.sh docs/man/zcbus-bridge.1
TESTS += tests/test_bridge.sh
if HAVE_NATS
bin_PROGRAMS += zcbus-bridge
zcbus_bridge_SOURCES = \
	bridge/main.c bridge/bridge.h bridge/util.h \
	bridge/conf.c bridge/conf.h \
	bridge/subject.c bridge/subject.h \
	bridge/state.c bridge/state.h \
	bridge/echo.c bridge/echo.h \
	bridge/batch.c bridge/batch.h \
	bridge/link.c \
	bridge/natsio.c bridge/natsio.h \
	bridge/out.c \
	bridge/in.c \
	clients/json.c clients/json.h
zcbus_bridge_CPPFLAGS = -I$(top_srcdir)/include -I$(top_srcdir)/clients -include $(top_builddir)/config.h
zcbus_bridge_CFLAGS = $(AM_CFLAGS) $(UUID_CFLAGS) $(NATS_CFLAGS)
zcbus_bridge_LDADD = libzcbus.la $(NATS_LIBS) $(EV_LIBS) $(UUID_LIBS)
man1_MANS = docs/man/zcbus-bridge.1
TESTS_ENVIRONMENT_VARS += ZCBUS_BRIDGE=$(abs_top_builddir)/zcbus-bridge
# The benchmark behind scripts/bridge-bench.sh (not installed).
noinst_PROGRAMS = zcbus-bridge-bench
zcbus_bridge_bench_SOURCES = bridge/bench.c
zcbus_bridge_bench_CPPFLAGS = $(zcbus_bridge_CPPFLAGS)
zcbus_bridge_bench_CFLAGS = $(zcbus_bridge_CFLAGS)
zcbus_bridge_bench_LDADD = libzcbus.la $(NATS_LIBS)
# test_bridge.sh's forger of origin headers (tests/test_bridge_forge.c).
check_PROGRAMS += tests/test_bridge_forge
tests_test_bridge_forge_SOURCES = tests/test_bridge_forge.c
tests_test_bridge_forge_CPPFLAGS = -include $(top_builddir)/config.h
tests_test_bridge_forge_CFLAGS = $(AM_CFLAGS) $(NATS_CFLAGS)
tests_test_bridge_forge_LDADD = $(NATS_LIBS)
TESTS_ENVIRONMENT_VARS += ZCBUS_BRIDGE_FORGE=$(abs_top_builddir)/tests/test_bridge_forge
endif

# The parser, the name mapping and the batch records need no NATS: their Check suites run
# wherever Check is.
if HAVE_CHECK
check_PROGRAMS += tests/test_bridge_subject tests/test_bridge_conf
TESTS += tests/test_bridge_subject tests/test_bridge_conf
tests_test_bridge_subject_SOURCES = tests/test_bridge_subject.c bridge/subject.c bridge/subject.h bridge/util.h \
	bridge/batch.c bridge/batch.h
tests_test_bridge_subject_CPPFLAGS = -I$(top_srcdir)/include -I$(top_srcdir)/bridge -include $(top_builddir)/config.h
tests_test_bridge_subject_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) -Wno-missing-prototypes
tests_test_bridge_subject_LDADD = $(CHECK_LIBS)
tests_test_bridge_conf_SOURCES = tests/test_bridge_conf.c bridge/conf.c bridge/conf.h bridge/subject.c bridge/subject.h
tests_test_bridge_conf_CPPFLAGS = $(tests_test_bridge_subject_CPPFLAGS)
tests_test_bridge_conf_CFLAGS = $(tests_test_bridge_subject_CFLAGS) $(UUID_CFLAGS)
tests_test_bridge_conf_LDADD = $(CHECK_LIBS) $(UUID_LIBS)
endif
