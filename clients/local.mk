# SPDX-License-Identifier: MIT
# Included by Makefile.am: the zcbus CLI and its measurement lab.

# --- zcbus: the CLI, on the public API and the shared library alone ------
# zcbus_CPPFLAGS replaces AM_CPPFLAGS, leaving libbus/ off the include
# path: the CLI cannot include an internal header, and links libzcbus.la
# (exported zcbus_* only), not the convenience library.
bin_PROGRAMS = zcbus
zcbus_SOURCES = \
	clients/main.c clients/cli.h \
	clients/cli_util.c clients/cli_util.h \
	clients/cli_common.c \
	clients/json.c clients/json.h \
	clients/cmd_pubsub.c \
	clients/subset.c clients/subset.h \
	clients/frame.c clients/frame.h \
	clients/cmd_list.c \
	clients/cmd_stat.c \
	clients/cmd_peers.c \
	clients/cmd_record.c \
	clients/cmd_bench.c
zcbus_CPPFLAGS = -I$(top_srcdir)/include -I$(top_srcdir)/clients -include $(top_builddir)/config.h \
	-DZCBUS_PKGLIBEXECDIR='"$(pkglibexecdir)"'
zcbus_CFLAGS = $(AM_CFLAGS) $(UUID_CFLAGS)
zcbus_LDADD = libzcbus.la $(UUID_LIBS)

# --- zcbus-bench: the lab behind `zcbus lat` and `zcbus perf` -----------
# It shares the ring's wait engine and slot layout, so it links libbus's
# internals; zcbus executes it from $(pkglibexecdir) (cmd_bench.c).
pkglibexec_PROGRAMS = zcbus-bench
zcbus_bench_SOURCES = \
	clients/bench/main.c clients/bench/bench.h \
	clients/bench/cmd_lat.c \
	clients/bench/cmd_perf.c \
	clients/bench/cmd_fanout.c \
	clients/bench/lat.c clients/bench/lat.h \
	clients/bench/perf.c clients/bench/perf.h \
	clients/bench/fanout.c clients/bench/fanout.h \
	clients/bench/opts.c clients/bench/opts.h \
	clients/bench/procs.c clients/bench/procs.h \
	clients/bench/xp.c clients/bench/xp.h \
	clients/bench/xp_zcbus.c clients/bench/xp_zcbus.h \
	clients/bench/xp_shm.c clients/bench/xp_shm.h \
	clients/bench/xp_sock.c clients/bench/xp_sock.h \
	clients/bench/hist.c clients/bench/hist.h \
	clients/bench/plot.c clients/bench/plot.h \
	clients/cli_util.c clients/cli_util.h \
	clients/json.c clients/json.h
zcbus_bench_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/clients
zcbus_bench_LDADD = libbus/libzcbus-internal.la $(UUID_LIBS) -lm
