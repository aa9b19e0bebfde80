# Included by Makefile.am: the zcbus CLI (and the measurement lab).
bin_PROGRAMS = zcbus
zcbus_SOURCES = \
	clients/main.c clients/cli.h \
	clients/cmd_pubsub.c \
	clients/cmd_list.c \
	clients/json.c clients/json.h \
	clients/cmd_lat.c \
	clients/cmd_perf.c \
	clients/bench.c clients/bench.h \
	clients/hist.c clients/hist.h \
	clients/baseline.c clients/baseline.h
zcbus_LDADD = libbus/libzcbus-internal.la $(UUID_LIBS) -lm

