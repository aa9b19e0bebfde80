/* SPDX-License-Identifier: MIT */
/*
 * errors.c: names for the codes libzcbus returns. Codes are plain negative
 * errno values; where a code means something specific on the bus, the
 * text says that rather than the libc wording.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "macro.h"
#include "zcbus.h"

_public_ const char *zcbus_strerror(int err) {
        if (err > 0)
                err = -err;
        switch (err) {
        case 0:
                return "success";
        case -EAGAIN:
                return "would have to wait (no message, or no room in the ring)";
        case -ETIMEDOUT:
                return "timed out";
        case -EMSGSIZE:
                return "message larger than the topic's slot size";
        case -EEXIST:
                return "topic exists with options that do not fit the request";
        case -ENOBUFS:
                return "too many messages held: release some first";
        case -EUSERS:
                return "no free entry: the topic's producers or subscribers, or the broker's sessions, are all taken";
        case -EACCES:
                return "permission denied (by the broker's access rules, or the socket's mode)";
        case -ESTALE:
                return "evicted: this subscription held a reliable topic back past the broker's stall timeout";
        case -EDQUOT:
                return "quota exceeded (from the broker: this uid or session holds its limit)";
        case -ENOTCONN:
                return "not connected to the broker";
        case -ECONNREFUSED:
                return "no broker is listening on the socket";
        case -ENOENT:
                return "no such file, socket, topic or entry";
        case -EBADMSG:
                return "malformed message or segment";
        case -EPROTO:
                return "protocol version mismatch with the broker";
        case -EBUSY:
                return "busy: a loan is outstanding, or the topic is in use";
        case -EINVAL:
                return "invalid argument";
        case -EINTR:
                return "interrupted by a signal";
        case -ENAMETOOLONG:
                return "topic name or socket path too long";
        case -EPIPE:
        case -ECONNRESET:
                return "the broker closed the connection";
        case -ENOSPC:
                return "no space left (from the broker: its topic or memory limit is reached)";
        case -EFBIG:
                return "too large (from the broker: the ring would exceed its per-topic limit)";
        case -EMFILE:
                return "too many open files (from the broker: this connection holds too many entries)";
        default:
                return strerror(-err);
        }
}

_public_ const char *zcbus_policy_name(uint32_t policy) {
        switch (policy) {
        case ZCBUS_POLICY_RELIABLE:
                return "reliable";
        case ZCBUS_POLICY_LATEST:
                return "latest";
        default:
                return "unknown";
        }
}

_public_ const char *zcbus_entry_state_name(uint32_t state) {
        switch (state) {
        case ZCBUS_ENTRY_LIVE:
                return "live";
        case ZCBUS_ENTRY_EVICTED:
                return "evicted";
        case ZCBUS_ENTRY_ORPHAN:
                return "orphan";
        case ZCBUS_ENTRY_REPAIR:
                return "repair";
        default:
                return "unknown";
        }
}
