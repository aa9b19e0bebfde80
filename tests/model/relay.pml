/* SPDX-License-Identifier: MIT */
/*
 * relay.pml: a Promela model of the readers' relayed wake-up (ordering
 * point R, docs/design.md), checked with spin by tests/test_model.sh next
 * to zcbus.pml. tests/model/README.md ("The relayed wake") says what is
 * modelled, what is abstracted and how the properties map to the code.
 *
 * One subscriber table: NR readers that each receive every message, one
 * or two producers, the table's `data_armed`, `data_word` and `relayed`,
 * the futex with its wait queue and bitsets, kill -9 before any store of
 * a reader or producer, and the broker's wake-all on eviction.
 *
 *   reader (wait_until_n, relay):
 *     v = word; armed = 1; re-check;
 *     FUTEX_WAIT_BITSET(word, v, 1 << (v & 31));
 *     now = word; if (now != v) { seen = relayed;
 *       if (seen != now && CAS(relayed, seen, now)) FUTEX_WAKE(word, ALL) }
 *     re-check, loop
 *   producer (ring_wake_data, wait_wake_relay), after publishing (fence):
 *     if (armed && xchg(armed, 0)) { old = word++;
 *       FUTEX_WAKE_BITSET(word, 2, 1 << (old & 31)) }
 *   broker, evicting any dead peer (ring_wake_data_all): word++;
 *     FUTEX_WAKE(word, ALL)
 *
 * The futex is its wait queue: FUTEX_WAIT checks word == v and queues the
 * sleeper with its tag in one step; a wake of n with a tag takes exactly
 * min(n, matching sleepers), chosen in any order (nondeterministically:
 * the kernel's FIFO order among equal priorities is not relied on). Word
 * values stay below 32, so the tag is the value. The 1 s slice cap of a
 * relayed sleep is NOT modelled: nothing but a wake-up or a (bounded)
 * deadline gets a sleeper out of the queue. Stopped (SIGSTOP) peers are out
 * of scope; only the slice cap helps them.
 *
 * Run-time parameters, from the environment of ./pan:
 *   ZR_M0, ZR_M1     messages of producers 0 and 1                 [2, 0]
 *   ZR_MAXCRASH      how many peers may die (kill -9)                 [1]
 *   ZR_CRASHERS      bit i: reader i may die; bits NR, NR+1: producers [all]
 *   ZR_CRASHPTS      where (CP_* below) a death may happen            [all]
 *   ZR_TIMEOUTS      how many sleeps may end early (a deadline)       [0]
 *   ZR_WAKEN         sleepers the producer's wake takes               [2]
 *   ZR_UNTAGGED      bit i: reader i sleeps untagged (futex_waitv, as
 *                    zcbus_wait_any does: matches every bitset)      [0]
 *   ZR_BUG           re-introduce a bug, BUG_* below                  [0]
 * Memory model: every shared access is one atomic step (SC); the code's
 * accesses on these words are seq_cst (R, K, C/D in docs/design.md).
 */

#ifndef NR
#define NR 3                    /* readers (3 or 4) */
#endif
#define NPR 2                   /* producers */
#define NPEER (NR + NPR)        /* readers 0 .. NR-1, producers NR, NR+1 */
#define ANY 255                 /* FUTEX_BITSET_MATCH_ANY */

/* the bugs (ZR_BUG) */
#define BUG_RELAY_NO_WAKE 1     /* the relayer claims the value but wakes nobody */
#define BUG_WAKE_UNTAGGED 2     /* the producer's wake of two ignores the tags (FUTEX_WAKE) */
#define BUG_RELAY_CAS_OLD 3     /* the relay is claimed only from the value slept on: CAS(relayed, v, now) */
#define BUG_WAKER_MARKS 4       /* the producer marks its new value relayed */
#define BUG_NO_EVICT_WAKE 5     /* the broker's eviction wakes nobody */
#define BUG_WAKE_BEFORE_BUMP 6  /* the producer wakes before it bumps the word */
#define BUG_WAITANY_NO_FORCE 7  /* an untagged (futex_waitv) sleeper woken to an
                                   unchanged word relays nothing (the code before
                                   the model found it could swallow both wakes) */

/* crash points (ZR_CRASHPTS) */
#define CP_ARM 1                /* reader: before arming */
#define CP_SLEEP 2              /* reader: armed, before FUTEX_WAIT */
#define CP_CLAIM 4              /* reader: woken to a changed word, before its CAS */
#define CP_RELAY 8              /* reader: took the relay, before FUTEX_WAKE(ALL) */
#define CP_PUB 16               /* producer: before publishing */
#define CP_TAKE 32              /* producer: published, before taking the arm */
#define CP_BUMP 64              /* producer: took the arm, before bumping the word */
#define CP_WAKE 128             /* producer: bumped, before FUTEX_WAKE_BITSET */


byte m0, m1, maxcrash, crashers, crashpts, timeouts, waken, untagged, bug;
bit relay_no_lost_wakeup;

/* ------------------------------------------------------- shared memory */
byte pub;                       /* messages published (the stamps, A) */
byte word;                      /* data_word */
byte relayed;                   /* the value relayed last */
bit armed;                      /* data_armed */

/* ------------------------------------------------ kernel and ghost state */
bit sl[NR];                     /* futex queue: reader i sleeps on word (at the
                                 * end: sleeps, as it could do nothing else) */
byte tag[NR];                   /* ... with this bitset (its value, or ANY) */
bit dead[NPEER];
byte ncrash, ntimeout;
byte cur[NR];                   /* messages reader i has received */

#define CHECK(c, name) if :: (c) -> skip :: else -> assert(name) fi

/* a step that stores, with a crash point of kind cp before it; L: a step
 * that only loads (a crash before a load is, to everyone else, a crash
 * before the next store); B: the broker (not killed) */
#define CRASH ncrash++; dead[me] = 1; goto crashed
#define S(cp, ...) atomic { if :: (ncrash < maxcrash && (crashers & (1 << me)) && (crashpts & (cp))) -> CRASH :: true -> __VA_ARGS__ fi }
#define L(...) atomic { __VA_ARGS__ }
#define B(...) atomic { __VA_ARGS__ }

/* FUTEX_WAKE_BITSET(word, n, tag t): exactly min(n, matching) sleepers,
 * any of them (else is taken only when no sleeper is left to take) */
#define MATCH(i, t) (sl[i] && (tag[i] == (t) || tag[i] == ANY || bug == BUG_WAKE_UNTAGGED))
#define TAKE(i, n, t) :: k < (n) && MATCH(i, t) -> sl[i] = 0; k++
#if NR == 3
#define TAKE_ANY(n, t) TAKE(0, n, t) TAKE(1, n, t) TAKE(2, n, t)
#else
#define TAKE_ANY(n, t) TAKE(0, n, t) TAKE(1, n, t) TAKE(2, n, t) TAKE(3, n, t)
#endif
#define FUTEX_WAKE_BITS(n, t) k = 0; do TAKE_ANY(n, t) :: else -> break od; k = 0
/* FUTEX_WAKE(word, ALL) */
#define FUTEX_WAKE_ALL k = 0; do :: k < NR -> sl[k] = 0; k++ :: else -> break od; k = 0

/* -------------------------------------------------------------- readers */

/* A reader's check of its next stamp; when ready it receives, and goes
 * on receiving while messages are there, in this one step: its cursor is
 * its own, so receiving every message published by now at once is, to
 * everyone else, its receive calls one after another. */
#define TAKE_READY ok = (pub > cur[r]); if :: ok -> cur[r] = pub :: else -> skip fi

/* relay(ww, v): after every sleep, woken or not */
/* A tagged sleeper relays when it wakes to a changed word. An untagged
 * one (futex_waitv matches every tag) may have been woken for an older
 * value than the one it slept on, so, woken, it relays whatever value the
 * word has unless that one was relayed already. */
inline relay() {
        if
        :: now != v || (woke && (untagged & (1 << r)) && bug != BUG_WAITANY_NO_FORCE) ->
                L(seen = relayed);
                if
                :: seen != now ->
                        S(CP_CLAIM, won = (relayed == ((bug == BUG_RELAY_CAS_OLD) -> v : seen));
                                    if :: won -> relayed = now :: else -> skip fi);
                        if
                        :: won && bug != BUG_RELAY_NO_WAKE -> S(CP_RELAY, FUTEX_WAKE_ALL)
                        :: else -> skip
                        fi
                :: else -> skip
                fi
        :: else -> skip
        fi;
        now = 0; seen = 0; won = 0; woke = 0
}

proctype Reader(byte r) {
        byte me = r;
        byte v, now, seen, k;
        bit ok, won, woke;

        /* receive forever: at the end every live reader sleeps for a
         * message that never comes */
        do
        :: L(TAKE_READY);
           if
           :: ok -> ok = 0                              /* take_one, and again */
           :: else ->
                /* wait_until_n (FUTEX mode; the spin phase only re-checks) */
                do
                :: L(v = word);                         /* C / K: the word, */
                   S(CP_ARM, armed = 1);                /* then the arm, */
                   L(TAKE_READY);                       /* then the re-check */
                   if
                   :: ok -> break
                   :: else -> skip
                   fi;
                   /* FUTEX_WAIT_BITSET(word, v, 1 << v): queues only while word == v */
                   S(CP_SLEEP, if
                               :: word == v -> sl[r] = 1; tag[r] = ((untagged & (1 << r)) -> ANY : v)
                               :: else -> skip
                               fi);
                   /* woken, or the word had moved: what relay() loads
                    * first, in the same step (noticing the wake touches
                    * nothing anyone else reads, so it can wait for it) */
                   if
                   :: atomic { !sl[r] -> woke = (tag[r] != 0); tag[r] = 0; now = word }
                   :: atomic { sl[r] && ntimeout < timeouts -> ntimeout++; sl[r] = 0; tag[r] = 0 };
                      L(now = word)
                   fi;
                   relay();
                   L(TAKE_READY);
                   if
                   :: ok -> break
                   :: else -> skip                      /* (a timed-out receive is called again) */
                   fi
                od;
                v = 0; ok = 0
           fi
        od;
crashed:        /* a dead process keeps no state */
        skip;
        d_step { v = 0; now = 0; seen = 0; k = 0; ok = 0; won = 0; woke = 0 }
}

/* ------------------------------------------------------------ producers */

proctype Prod(byte p) {
        byte me = NR + p;
        byte m, old, k;
        bit a;

        m = ((p == 0) -> m0 : m1);
        do
        :: m > 0 ->
                S(CP_PUB, pub++);                      /* A (and the fence of D) */
                /* D / K: load_sc(armed) and exchange(armed, 0): one step,
                 * as the load only saves the exchange when it reads 0 */
                S(CP_TAKE, a = armed; armed = 0);
                if
                :: a ->
                        if
                        :: a && bug == BUG_WAKE_BEFORE_BUMP ->
                                S(CP_BUMP, FUTEX_WAKE_BITS(waken, word));
                                S(CP_WAKE, word++)
                        :: a && bug != BUG_WAKE_BEFORE_BUMP ->
                                S(CP_BUMP, old = word; word++;
                                           if :: bug == BUG_WAKER_MARKS -> relayed = word :: else -> skip fi);
                                S(CP_WAKE, FUTEX_WAKE_BITS(waken, old))
                        :: else -> skip
                        fi
                :: else -> skip
                fi;
                a = 0; old = 0;
                m--
        :: else -> break
        od;
crashed:        /* a dead process keeps no state */
        skip;
        d_step { m = 0; old = 0; k = 0; a = 0 }
}

/* --------------------------------------------------------------- broker */

/* ring_sub_evict / ring_prod_evict: wake_both -> ring_wake_data_all */
proctype Evict(byte me) {
        byte k;

end_idle:
        atomic {
                dead[me];
                if
                :: bug != BUG_NO_EVICT_WAKE -> word++; FUTEX_WAKE_ALL
                :: else -> skip
                fi
        }
}

/* ----------------------------------------------------- the final check */

/* Once the system can do nothing more (every run is finite: the
 * non-progress search shows it), no live reader sleeps while a message
 * it has not received is published. */
proctype Monitor() {
        byte i;

        timeout;
        d_step {
                i = 0;
                do
                :: i < NR ->
                        CHECK(!sl[i] || pub <= cur[i], relay_no_lost_wakeup);
                        i++
                :: else -> break
                od;
                i = 0
        }
}

#define PARAM(var, name, dflt) c_code { now.var = getenv(name) ? atoi(getenv(name)) : dflt; }

init {
        byte i;

        PARAM(m0, "ZR_M0", 2);
        PARAM(m1, "ZR_M1", 0);
        PARAM(maxcrash, "ZR_MAXCRASH", 1);
        PARAM(crashers, "ZR_CRASHERS", 255);
        PARAM(crashpts, "ZR_CRASHPTS", 255);
        PARAM(timeouts, "ZR_TIMEOUTS", 0);
        PARAM(waken, "ZR_WAKEN", 2);
        PARAM(untagged, "ZR_UNTAGGED", 0);
        PARAM(bug, "ZR_BUG", 0);
        atomic {
                i = 0;
                do
                :: i < NR -> run Reader(i); i++
                :: else -> break
                od;
                run Prod(0);
                run Prod(1);
                i = 0;
                do
                :: i < NPEER -> run Evict(i); i++
                :: else -> break
                od;
                i = 0;
                run Monitor()
        }
}
