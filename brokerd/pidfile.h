/* SPDX-License-Identifier: MIT */
/*
 * pidfile.h: the broker's pid file (--pidfile, config `pidfile`). See
 * pidfile.c.
 */
#ifndef ZCBUS_BROKERD_PIDFILE_H
#define ZCBUS_BROKERD_PIDFILE_H

struct pidfile;

/* Create or open path and take its lock. A file whose lock another
 * process holds belongs to a live broker: -EBUSY, logged with the pid it
 * names. A file nobody holds is stale and taken over (emptied). Other
 * failures are logged with their errno. The file stays empty until
 * pidfile_write(). */
int pidfile_acquire(const char *path, struct pidfile **ret);
/* Write our pid (decimal, a newline). Returns 0 or a negative errno,
 * logged. */
int pidfile_write(struct pidfile *p);
/* Remove the file if it is still ours (same device and inode), then
 * release the lock. Accepts NULL. */
void pidfile_free(struct pidfile *p);

#endif
