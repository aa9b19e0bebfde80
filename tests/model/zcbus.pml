/* SPDX-License-Identifier: MIT */
/*
 * zcbus.pml: a Promela model of the zcbus ring protocol (issue 10,
 * "Proof"), checked with spin by tests/test_model.sh. tests/model/README.md
 * says what is modelled, what is abstracted and how each property maps to
 * the ordering points of docs/design.md.
 *
 * Configuration at compile time (spin -D...):
 *   LATEST         LATEST policy (holds, SKIPPED); default RELIABLE (floors)
 *   N              slots (2 or 4)            NS   subscribers (1 or 2)
 *   STARVE         a run that reaches ZM_SEQLIM is an error (README: Findings)
 * and at run time, from the environment of ./pan (so one compiled pan
 * checks every size and every bug variant of a policy):
 *   ZM_M0, ZM_M1   messages of producers 0 and 1 (two producers)    [1, 1]
 *   ZM_MAXCRASH    how many producers/subscribers may crash (kill -9)  [1]
 *   ZM_CRASHERS    bit i: peer i may crash (producers 0, 1, then subs) [all]
 *   ZM_MAXHOLD     holds a subscriber may keep (1 or 2)                [1]
 *   ZM_SEQLIM      sequences explored (LATEST runs are cut there)      [8]
 *   ZM_DEADLINE    1: receives have a deadline (a nondeterministic
 *                  timeout) and subscribers make ZM_R calls           [0]
 *   ZM_R           receive calls per subscriber (with ZM_DEADLINE)     [3]
 *   ZM_BUG         re-introduce a known bug, BUG_* below               [0]
 * tests/test_model.sh requires spin to find a counterexample for each bug.
 *
 * Memory model: every shared access below is one atomic step, so spin's
 * interleaving is sequential consistency. The code uses C11 atomics:
 * seq_cst for the Dekker pairs (fetch-add on head, the hold fetch-or /
 * fetch-and and the stamp re-load (H), the WRITING store and hold load
 * (I), the sleeper's word load, arm store and re-check loads (K, C, F),
 * the waker's exchange of `armed`), release stores for stamps (A),
 * floors (E) and claim records (J), acquire loads for stamps (B) and head,
 * relaxed ones for descriptors, and a full fence (seq_cst) between a
 * waker's store and its load of `armed` (D, E). That those orders give SC
 * behaviour for what is checked here is argued in docs/design.md
 * ("Ordering points"); weak memory is NOT covered by this model.
 *
 * The wake scheme is the one without waiter counts: per direction (DATA:
 * readers wait for stamps, producers for the lap before; ROOM: producers
 * wait for floors / holds) an `armed` word and a futex `word`.
 *   sleeper: v = word; armed = 1; re-check; FUTEX_WAIT(word, v)
 *   waker:   store; fence; if (armed && xchg(armed, 0)) { word++; FUTEX_WAKE(all) }
 *   broker evicting a dead peer: word++ and FUTEX_WAKE(all) on both words
 * The futex is modelled with its wait queue: FUTEX_WAIT atomically checks
 * word == v and enqueues the sleeper, FUTEX_WAKE dequeues every sleeper on
 * that word. So a waker that dies between word++ and FUTEX_WAKE leaves a
 * sleeper asleep, as the kernel would.
 */

/* ------------------------------------------------------------ geometry */
#ifndef N
#define N 2
#endif
#ifndef NS
#define NS 1
#endif
#define NP 2
#define NPEER (NP + NS)
#define SEQMAX 16
#define TOTAL (m0 + m1)

/* the known bugs (ZM_BUG) */
#define BUG_NO_EVICT_WAKE 1     /* eviction does not wake (a waker died holding the arm) */
#define BUG_WAKE_BEFORE_STORE 2 /* the producer loads armed before its stamp store */
#define BUG_ARM_FIRST 3         /* the sleeper arms before it reads the futex word */
#define BUG_NO_RECHECK 4        /* LATEST reader: no stamp re-check after taking its hold */
#define BUG_NO_HOLD_CHECK 5     /* LATEST producer: no look at the holds */
#define BUG_NO_GATE 6           /* RELIABLE producer: no wait for the floors after claiming */
#define BUG_NO_PENDING_WAIT 7   /* repair: no wait for live producers between intent and sequence */
#define BUG_ABANDON_NO_FLOOR 8  /* repair: abandons a slot a subscriber still needs */
#define BUG_REPAIR_NO_HOLES 9   /* repair: ignores a claim that died as an intent (J) */
#define BUG_NO_TRANSIENT_WAKE 10 /* LATEST reader: dropping a transient hold wakes nobody (the code today) */
#define BUG_RESLEEP 11          /* the sleeper ignores its timeout and sleeps again */

/* run-time parameters, constant once init has read them */
byte m0, m1, maxcrash, crashers, maxhold, seqlim, rcalls, bug;
bit deadline;
/* the named properties: each is a bit that stays 0, so that a violation
 * is reported as "assertion violated <name>" */
bit no_lost_wakeup, hold_safe, floor_safe, no_torn_read, repair_safe, all_stamped, no_stall,
    recv_terminates, bounded_skips;

/* --------------------------------------------------------------- values */
#define W 128           /* SEG_STAMP_WRITING (stamps are seq + 1 < 128) */
#define NONE 255        /* SEG_FLOOR_NONE, SEG_CLAIM_NONE */
#define PEND 128        /* SEG_CLAIM_PENDING */
#define F_AB 1          /* SEG_SLOT_ABANDONED */
#define F_SK 2          /* SEG_SLOT_SKIPPED */
#define ACTIVE 1
#define CLOSING 2
#define FREE 0
/* what a peer is doing (ghost) */
#define RUN 0
#define SLEEP 1
#define DONE 2
#define DEAD 3
/* what a sleeper waits for */
#define K_DATA 1        /* subscriber: the stamp at its cursor */
#define K_PREV 2        /* producer: the lap before is published (ROOM_PREV) */
#define K_GATE 3        /* RELIABLE producer: every floor within a ring (ROOM_GATE) */
#define K_UNHELD 4      /* LATEST producer: some slot not held */
/* the two directions of notification */
#define DATA 1
#define ROOM 2
#define TIMEDOUT 1

/* ------------------------------------------------------- shared memory */
byte head;                      /* next sequence to claim */
byte stamp[N];                  /* seq + 1, | W while being rewritten */
byte desc[N];                   /* descriptor: whose it is (len, ts, producer) */
byte flags[N];                  /* descriptor flags: 0, F_AB, F_SK */
byte payload[N];                /* the message: its sequence */
byte hold[N];                   /* LATEST hold bitmaps, bit s: subscriber s */
byte sfloor[NS];                /* RELIABLE floors (NONE: gates nothing) */
byte claim[NP];                 /* claim records (J) */
byte pstate[NP];                /* producer entry state */
byte word[3];                   /* futex words: [DATA], [ROOM] */
bit armed[3];                   /* K: a sleeper wants a wake-up */

/* ------------------------------------------------ kernel and ghost state */
byte sl[NPEER];                 /* futex queue: the word a peer sleeps on, 0 none */
byte phase[NPEER];              /* RUN, SLEEP, DONE, DEAD */
byte wkind[NPEER];              /* what a sleeper waits for */
byte wseq[NPEER];               /* ... and for which sequence */
bit dead[NPEER];                /* kill -9'd (the broker sees it: pidfd) */
byte ncrash;                    /* crashes so far */
byte owner[SEQMAX];             /* who took each sequence with the fetch-add */
byte vhold[N];                  /* LATEST: holds that passed their re-check (H) */
byte nxt[NS];                   /* subscribers' private cursors ... */
byte nheld[NS];                 /* ... number of holds ... */
byte held[NS * 2];              /* ... and the held sequences, oldest first */
bit reg[NS];                    /* RELIABLE: subscriber registered, gating */
bit cut;                        /* a run reached SEQLIM and was cut (LATEST) */
byte evph[NPEER];               /* broker's work for a dead peer: 0 none, 1 busy, 2 done */

/* ---------------------------------------------------------- predicates */
#define SLOT(t) ((t) % N)
#define SEQV(v) ((v) & 127)
#define ST_READY(v, c) ((v) == (c) + 1)
#define ST_LAPPED(v, c) (SEQV(v) > (c) + 1)
#define ST_NOTYET(v, c) (!ST_READY(v, c) && !ST_LAPPED(v, c))
/* seg_prev_stamp, ring_prev_done */
#define PREVST(t) (((t) >= N) -> ((t) - N + 1) : 0)
#define PREVDONE(t) (stamp[SLOT(t)] == PREVST(t) || stamp[SLOT(t)] == (W | ((t) + 1)))
/* ring_scan_floors */
#if NS == 1
#define MINF (sfloor[0])
#else
#define MINF ((sfloor[0] < sfloor[1]) -> sfloor[0] : sfloor[1])
#endif
#define GATEOK(t) ((t) < MINF + N)
/* some_slot_unheld */
#if N == 2
#define UNHELD (hold[0] == 0 || hold[1] == 0)
#else
#define UNHELD (hold[0] == 0 || hold[1] == 0 || hold[2] == 0 || hold[3] == 0)
#endif
/* the condition a sleeper waits for */
#define READY(k, t) (((k) == K_DATA) -> !ST_NOTYET(stamp[SLOT(t)], t) : \
                     (((k) == K_PREV) -> PREVDONE(t) : \
                      (((k) == K_GATE) -> GATEOK(t) : UNHELD)))
/* RELIABLE: the lowest sequence subscriber s still needs (ghost, from its
 * private state, not from its published floor) */
#define NEED(s) ((nheld[s] > 0) -> held[(s) * 2] : nxt[s])
#define GATES(s) (reg[s] && !dead[NP + (s)])
#if NS == 1
#define FLOORSAFE(t) (!GATES(0) || (t) < NEED(0) + N)
#else
#define FLOORSAFE(t) ((!GATES(0) || (t) < NEED(0) + N) && (!GATES(1) || (t) < NEED(1) + N))
#endif
/* every sequence below head is published or written off */
#define STAMPED(t) (stamp[SLOT(t)] == (t) + 1 || SEQV(stamp[SLOT(t)]) > (t) + 1)

/* A named property: on violation, print its name (seen when spin replays
 * the trail) and fail. */
#define CHECK(c, name) if :: (c) -> skip :: else -> assert(name) fi

/* One shared-memory step of a producer or subscriber that stores: before
 * it, the process may be killed (kill -9) and stop forever. L is a step
 * that only loads: to everyone else, a crash before a load is the same as
 * a crash before the next store (or at the end), so it needs no crash
 * point of its own. Sleeping in FUTEX_WAIT counts as a load here: dying
 * asleep is dying just before it. */
#define CRASH ncrash++; dead[me] = 1; phase[me] = DEAD; sl[me] = 0; goto crashed
#define S(...) atomic { if :: (ncrash < maxcrash && (crashers & (1 << me))) -> CRASH :: true -> __VA_ARGS__ fi }
#define L(...) atomic { __VA_ARGS__ }
/* a step of the broker (which is not killed in this model) */
#define B(...) atomic { __VA_ARGS__ }

/* FUTEX_WAKE(word w, all) */
#define FUTEX_WAKE_ALL(w) i = 0; do :: i < NPEER -> if :: sl[i] == (w) -> sl[i] = 0 :: else -> skip fi; i++ :: else -> break od; i = 0

/* ------------------------------------------------------------ the wakers */

/* wait_wake_armed, after the caller's store (its fence is implicit: SC):
 * wake_armed_loaded is the part after the load of armed into a. */
inline wake_armed_loaded(w) {
        if
        :: a ->
                S(a = armed[w]; armed[w] = 0);        /* K: exchange(armed, 0) */
                if
                :: a ->
                        S(word[w]++);
                        S(FUTEX_WAKE_ALL(w))
                :: else -> skip
                fi
        :: else -> skip
        fi;
        a = 0
}
inline wake_armed(w) {
        L(a = armed[w]);                              /* after the store and fence */
        wake_armed_loaded(w)
}

/* wait_wake_all, by the broker. One step: the broker is not killed here,
 * and a sleeper that read the word between the bump and FUTEX_WAKE would
 * only be woken once more. */
inline broker_wake_all(w) {
        B(word[w]++; FUTEX_WAKE_ALL(w))
}

/* ----------------------------------------------------------- the sleeper */

/* wait_until (FUTEX mode: the spin phase only re-checks and is left out):
 * returns r = 0 when READY(k, t), r = TIMEDOUT past a deadline (dl). */
inline wait_until(w, k, t, dl) {
        wkind[me] = k;
        wseq[me] = t;
        r = 0;
        do
        ::
                /* K: read the word, then arm (SC); BUG_ARM_FIRST swaps them */
                S(if :: bug == BUG_ARM_FIRST -> armed[w] = 1 :: else -> v = word[w] fi);
                S(if :: bug == BUG_ARM_FIRST -> v = word[w] :: else -> armed[w] = 1 fi);
                L(ok = READY(k, t));                  /* C / F: re-check (SC) */
                if
                :: ok -> break
                :: else -> skip
                fi;
                /* FUTEX_WAIT(word, v): sleeps only while word == v */
                L(if :: word[w] == v -> sl[me] = w; phase[me] = SLEEP :: else -> skip fi);
                if
                :: atomic { sl[me] == 0 -> phase[me] = RUN }
                :: atomic { dl && sl[me] != 0 -> sl[me] = 0; phase[me] = RUN; r = TIMEDOUT }
                fi;
                L(ok = READY(k, t));
                if
                :: ok -> r = 0; break
                :: else -> skip
                fi;
                if
                :: r != 0 && bug != BUG_RESLEEP -> break      /* FUTEX_WAIT timed out */
                :: else ->
                        if
                        :: dl && bug != BUG_RESLEEP -> r = TIMEDOUT; break  /* the deadline passed */
                        :: true -> skip
                        fi
                fi
        od;
        wkind[me] = 0;
        wseq[me] = 0;
        v = 0;
        ok = 0
}

/* wait_room: look first, sleep only if not ready */
inline wait_for(w, k, t) {
        L(ok = READY(k, t));
        if
        :: !ok -> wait_until(w, k, t, 0); r = 0
        :: else -> skip
        fi;
        ok = 0
}

/* ------------------------------------------------------------ producers */

/* ring_take_seqs + ring_claim_set (J, G's fetch-add), h = head read.
 * Sequences are not bounded under LATEST: a reader stepping over a
 * producer's SKIPPED markers can, with the right timing every time, make
 * it skip again and again (README: "Findings"). The model cuts such a run
 * at SEQLIM sequences: the process stops, `cut` tells the final check to
 * look no further (with -DSTARVE it is an error instead). */
inline take_seq() {
        if
        :: h + 1 >= seqlim ->
#ifdef STARVE
                CHECK(false, bounded_skips);
#endif
                cut = 1;
                false
        :: else -> skip
        fi;
        S(claim[p] = PEND | h);                       /* J: the intent */
        S(t = head; head++; owner[t] = p);            /* fetch-add (SC) */
        S(claim[p] = t);                              /* J: the sequence */
        h = 0
}

/* ring_pub_notify */
inline notify() {
        wake_armed(DATA)
}

proctype Prod(byte p) {
        byte me = p;
        byte m, h, t, v, a, i, r, skips;
        bit ok;

        m = ((p == 0) -> m0 : m1);
        do
        :: m > 0 ->
#ifdef LATEST
                /* claim_latest */
                skips = 0;
claim_again:
                if
                :: skips >= N ->
                        skips = 0;
                        L(ok = UNHELD);
                        if
                        :: !ok -> wait_until(ROOM, K_UNHELD, 0, 0)
                        :: else -> skip
                        fi;
                        ok = 0
                :: else -> skip
                fi;
                L(h = head);
                take_seq();
                wait_for(DATA, K_PREV, t);                    /* ROOM_PREV */
                S(stamp[SLOT(t)] = W | (t + 1));              /* I: mark (SC) */
                L(ok = (hold[SLOT(t)] == 0 || bug == BUG_NO_HOLD_CHECK));  /* I: holds (SC) */
                if
                :: ok -> ok = 0
                :: else ->
                        /* ring_mark_slot(SKIPPED): the descriptor only */
                        S(desc[SLOT(t)] = t; flags[SLOT(t)] = F_SK);
                        S(stamp[SLOT(t)] = t + 1);
                        S(claim[p] = NONE);
                        notify();
                        skips++;
                        goto claim_again
                fi;
#else
                /* ring_pub_claim_slow: look (gate), claim, prepare */
                L(h = head);
                wait_for(ROOM, K_GATE, h);                    /* look before claiming */
                take_seq();
                wait_for(DATA, K_PREV, t);                    /* ROOM_PREV */
                if
                :: bug != BUG_NO_GATE -> wait_for(ROOM, K_GATE, t)    /* ROOM_GATE */
                :: else -> skip
                fi;
#endif
                /* write the payload in place, then publish (A) */
                S(
#ifdef LATEST
                  CHECK(vhold[SLOT(t)] == 0, hold_safe);
#else
                  CHECK(FLOORSAFE(t), floor_safe);
#endif
                  payload[SLOT(t)] = t;
                  desc[SLOT(t)] = t; flags[SLOT(t)] = 0;
                  if :: bug == BUG_WAKE_BEFORE_STORE -> a = armed[DATA] :: else -> skip fi);
                S(stamp[SLOT(t)] = t + 1);                    /* A */
                S(claim[p] = NONE);
                /* D: the fence, then armed (BUG_WAKE_BEFORE_STORE: loaded above) */
                L(if :: bug != BUG_WAKE_BEFORE_STORE -> a = armed[DATA] :: else -> skip fi);
                wake_armed_loaded(DATA);
                t = 0;
                m--
        :: else -> break
        od;
        phase[me] = DONE;
crashed:        /* a dead (or finished) process keeps no state */
        skip;
        d_step { m = 0; h = 0; t = 0; v = 0; a = 0; i = 0; r = 0; skips = 0; ok = 0 }
}

/* ----------------------------------------------------------- subscribers */

#define BIT(s) (1 << (s))

/* ring_sub_publish_floor (E) of the floor in pubf */
inline publish_floor() {
        S(sfloor[s] = pubf);                          /* E (release; fence) */
        wake_armed(ROOM)
}

/* Release hold k (0: oldest, 1: newest); the application has read the
 * payload all along: it must still be the held message's. */
inline release(k) {
        c = held[s * 2 + k];
        S(CHECK(payload[SLOT(c)] == c, no_torn_read);
          held[s * 2 + k] = held[s * 2 + 1]; nheld[s]--;
#ifdef LATEST
          hold[SLOT(c)] = hold[SLOT(c)] & ~BIT(s);    /* H: drop (SC), also E's store */
          vhold[SLOT(c)] = vhold[SLOT(c)] & ~BIT(s)
#else
          skip
#endif
        );
        c = 0;
#ifdef LATEST
        wake_armed(ROOM)
#else
        if
        :: NEED(s) != pubf -> pubf = NEED(s); publish_floor()
        :: else -> skip
        fi
#endif
}

/* a transient hold (re-check failed, or a marker) is dropped */
inline drop_transient() {
        S(hold[SLOT(c)] = hold[SLOT(c)] & ~BIT(s));
        if
        :: bug != BUG_NO_TRANSIENT_WAKE -> wake_armed(ROOM)
        :: else -> skip
        fi
}

proctype Sub(byte s) {
        byte me = NP + s;
        byte c, v, v2, d, f, pl, h, a, i, r, pubf;
        byte calls;
        bit ok, had, got;

        pubf = sfloor[s];
        do
#ifndef LATEST
        :: nxt[s] >= TOTAL -> break                   /* everything seen */
#endif
        :: deadline && calls >= rcalls -> break
        :: else ->
                /* let go of a message, or keep it (up to MAXHOLD) */
                if
                :: nheld[s] > 0 -> release(0)
                :: nheld[s] > 1 -> release(1)
                :: nheld[s] < maxhold -> skip
                fi;
#ifndef LATEST
                /* RELIABLE: an application that keeps a message a whole
                 * ring behind its cursor and waits for the next one waits
                 * for itself (its hold gates that very slot): the model's
                 * application does not (README: Findings) */
                if
                :: nheld[s] > 0 && nxt[s] >= held[s * 2] + N -> release(0)
                :: else -> skip
                fi;
#endif
                if
                :: deadline -> calls++
                :: else -> skip
                fi;
                got = 0;
                /* ring_sub_recv_slow: take_one, else wait, and again */
                do
                :: got -> break
                :: else ->
#ifdef LATEST
                        L(c = nxt[s]; v = stamp[SLOT(c)]);            /* B */
#else
                        /* B, and the descriptor and payload after it, in
                         * one step: under RELIABLE nobody may write the
                         * slot meanwhile, and floor_safe checks that at
                         * every writer */
                        L(c = nxt[s]; v = stamp[SLOT(c)]; d = desc[SLOT(c)]; f = flags[SLOT(c)]; pl = payload[SLOT(c)]);
#endif
                        if
                        :: ST_READY(v, c) ->
#ifdef LATEST
                                L(d = desc[SLOT(c)]; f = flags[SLOT(c)]);
                                /* H: take the hold, then re-check the stamp */
                                S(had = ((hold[SLOT(c)] & BIT(s)) != 0);
                                  hold[SLOT(c)] = hold[SLOT(c)] | BIT(s);
                                  if :: bug == BUG_NO_RECHECK && f == 0 && !had -> vhold[SLOT(c)] = vhold[SLOT(c)] | BIT(s) :: else -> skip fi);
                                if
                                :: bug == BUG_NO_RECHECK -> v2 = v
                                :: else ->
                                        L(v2 = stamp[SLOT(c)];        /* H: re-check (SC) */
                                          if :: v2 == v && f == 0 && !had -> vhold[SLOT(c)] = vhold[SLOT(c)] | BIT(s) :: else -> skip fi)
                                fi;
                                if
                                :: v2 != v ->
                                        if
                                        :: !had -> drop_transient()
                                        :: else -> skip
                                        fi
                                :: else ->
#endif
                                        if
                                        :: f != 0 ->                  /* a marker: step over */
                                                CHECK(d == c, no_torn_read);
#ifdef LATEST
                                                if
                                                :: !had -> drop_transient()
                                                :: else -> skip
                                                fi;
#endif
                                                nxt[s] = c + 1
                                        :: else ->                    /* deliver */
                                                CHECK(d == c, no_torn_read);
                                                held[s * 2 + nheld[s]] = c;
                                                nheld[s]++;
                                                nxt[s] = c + 1;
                                                got = 1;
#ifdef LATEST
                                                L(CHECK(payload[SLOT(c)] == c, no_torn_read))
#else
                                                CHECK(pl == c, no_torn_read)
#endif
                                        fi
#ifdef LATEST
                                fi
#endif
                        :: ST_LAPPED(v, c) ->
#ifdef LATEST
                                /* skip_ahead */
                                L(h = head);
                                if
                                :: h > c + 1 -> nxt[s] = h - 1
                                :: else -> nxt[s] = c + 1
                                fi;
                                h = 0
#else
                                CHECK(false, floor_safe)              /* RELIABLE is never lapped */
#endif
                        :: else ->
                                /* nothing yet: publish a floor markers moved, then wait */
#ifndef LATEST
                                if
                                :: NEED(s) != pubf -> pubf = NEED(s); publish_floor()
                                :: else -> skip
                                fi;
#endif
                                wait_until(DATA, K_DATA, c, deadline);
                                if
                                :: r != 0 -> r = 0; break             /* -ETIMEDOUT */
                                :: else -> skip
                                fi
                        fi;
                        v = 0; v2 = 0; d = 0; f = 0; pl = 0; had = 0; c = 0
                od;
                got = 0
        od;
        /* release everything, then ring_sub_deinit */
        do
        :: nheld[s] > 0 -> release(0)
        :: else -> break
        od;
        reg[s] = 0;
        pubf = NONE;
        publish_floor();
        phase[me] = DONE;
crashed:        /* a dead (or finished) process keeps no state */
        skip;
        d_step {
                c = 0; v = 0; v2 = 0; d = 0; f = 0; pl = 0; h = 0; a = 0; i = 0; r = 0; pubf = 0;
                ok = 0; had = 0; got = 0;
                calls = 0;
                skip
        }
}

/* ---------------------------------------------------------------- broker */

inline wake_both() {
        if
        :: bug != BUG_NO_EVICT_WAKE ->
                broker_wake_all(DATA);
                broker_wake_all(ROOM)
        :: else -> skip
        fi
}

/* ring_sub_evict */
proctype EvictSub(byte s) {
        byte me = NP + s;
        byte i, j;

end_idle:
        dead[me];
        evph[me] = 1;
        j = 0;
        do
        :: j < N -> B(hold[j] = hold[j] & ~BIT(s); vhold[j] = vhold[j] & ~BIT(s); j++)
        :: else -> break
        od;
        B(sfloor[s] = NONE);
        wake_both();
        d_step { evph[me] = 2; j = 0 }
}

/* Does a producer other than p have a non-pending claim of t? */
#define CLAIMED_BY_OTHER(p, t) (claim[1 - (p)] != NONE && (claim[1 - (p)] & PEND) == 0 && claim[1 - (p)] == (t))
/* Is another active producer between its intent and its sequence? */
#define OTHER_PENDING(p) (pstate[1 - (p)] == ACTIVE && claim[1 - (p)] != NONE && (claim[1 - (p)] & PEND) != 0)

/* abandon(t): 0 done (r = 0), or not yet (r = 1: retry the repair) */
inline abandon(t) {
        r = 0;
        B(v = stamp[SLOT(t)]);
        if
        :: !ST_NOTYET(v, t) -> skip                   /* published, or moved on */
        :: else ->
                if
                :: v != PREVST(t) && v != (W | ((t) + 1)) -> r = 1    /* lap before not done */
                :: else ->
#ifndef LATEST
                        B(ok = GATEOK(t) || bug == BUG_ABANDON_NO_FLOOR);
                        if
                        :: !ok -> r = 1                              /* still needed */
                        :: else ->
#endif
                                /* ring_mark_slot(ABANDONED) */
                                B(CHECK(dead[owner[t]], repair_safe);
                                  if :: stamp[SLOT(t)] != (W | ((t) + 1)) -> stamp[SLOT(t)] = W | ((t) + 1) :: else -> skip fi);
                                B(
#ifndef LATEST
                                  CHECK(FLOORSAFE(t), floor_safe);
#endif
                                  desc[SLOT(t)] = t; flags[SLOT(t)] = F_AB);
                                B(stamp[SLOT(t)] = (t) + 1);
                                broker_wake_all(DATA)
#ifndef LATEST
                        fi
#endif
                fi
        fi;
        v = 0;
        ok = 0
}

/* ring_prod_evict, then ring_prod_repair retried (every 2 ms in zcbusd;
 * here a retry waits until the condition that failed may hold, which
 * adds no behaviour, and then repeats the whole repair) */
proctype EvictProd(byte p) {
        byte me = p;
        byte c, h, lo, t, v, i, r;
        bit ok;

end_idle:
        dead[me];
        evph[me] = 1;
        B(pstate[p] = CLOSING);
        wake_both();
repair:
        B(c = claim[p]);
        if
        :: c == NONE -> goto done
        :: (c & PEND) != 0 && bug == BUG_REPAIR_NO_HOLES -> goto done  /* the bug: a hole left alone */
        :: (c & PEND) == 0 ->
                abandon(c);
                if
                :: r -> atomic { (PREVDONE(c) || !ST_NOTYET(stamp[SLOT(c)], c)) && GATEOK(c) }; goto repair
                :: else -> goto done
                fi
        :: else -> skip
        fi;
        /* J: it died between its intent and its sequence */
        lo = c & ~PEND;
        B(h = head);
        B(ok = OTHER_PENDING(p) && bug != BUG_NO_PENDING_WAIT);
        if
        :: ok -> atomic { !OTHER_PENDING(p) }; goto repair
        :: else -> skip
        fi;
        t = lo;
        do
        :: t < h ->
                B(ok = !ST_NOTYET(stamp[SLOT(t)], t));
                if
                :: ok -> skip
                :: else ->
                        B(ok = CLAIMED_BY_OTHER(p, t));
                        if
                        :: ok -> skip
                        :: else ->
                                abandon(t);
                                if
                                :: r -> atomic { (PREVDONE(t) || !ST_NOTYET(stamp[SLOT(t)], t)) && GATEOK(t) }; goto repair
                                :: else -> skip
                                fi
                        fi
                fi;
                t++
        :: else -> break
        od;
done:
        B(claim[p] = NONE);
        B(pstate[p] = FREE);
        d_step { evph[me] = 2; c = 0; h = 0; lo = 0; t = 0; v = 0; i = 0; r = 0; ok = 0 }
}

/* ----------------------------------------------------- the final check */

/* Runs once the system can do nothing more (spin's timeout: every process
 * blocked or finished). Every execution of this model is finite (the
 * non-progress check of tests/test_model.sh shows there is no cycle), so
 * what "eventually" must hold has to hold here. */
proctype Monitor() {
        byte i;

        timeout;
        d_step {
                if
                :: cut -> goto cut_run
                :: else -> skip
                fi;
                i = 0;
                do
                :: i < NPEER ->
                        /* no_lost_wakeup: nobody sleeps on a condition that holds */
                        CHECK(phase[i] != SLEEP || !READY(wkind[i], wseq[i]), no_lost_wakeup);
                        i++
                :: else -> break
                od;
                i = 0;
                do
                :: i < NP ->
                        /* no_stall: every producer finished (or died) */
                        CHECK(phase[i] == DONE || phase[i] == DEAD, no_stall);
                        i++
                :: else -> break
                od;
                i = 0;
                do
                :: i < NPEER ->
                        /* no_stall: the broker finished every repair */
                        CHECK(evph[i] != 1, no_stall);
                        i++
                :: else -> break
                od;
                i = 0;
                do
                :: i < head ->
                        /* all_stamped: every claimed sequence published or abandoned */
                        CHECK(STAMPED(i), all_stamped);
                        i++
                :: else -> break
                od;
                i = NP;
                do
                :: deadline && i < NPEER ->
                        /* recv_terminates: every subscriber made all its calls */
                        CHECK(phase[i] == DONE || phase[i] == DEAD, recv_terminates);
                        i++
                :: else -> break
                od;
cut_run:
                i = 0
        }
}

/* a parameter from the environment of ./pan */
#define PARAM(var, name, dflt) c_code { now.var = getenv(name) ? atoi(getenv(name)) : dflt; }

init {
        byte i;

        PARAM(m0, "ZM_M0", 1);
        PARAM(m1, "ZM_M1", 1);
        PARAM(maxcrash, "ZM_MAXCRASH", 1);
        PARAM(crashers, "ZM_CRASHERS", 15);
        PARAM(maxhold, "ZM_MAXHOLD", 1);
        PARAM(seqlim, "ZM_SEQLIM", 8);
        PARAM(rcalls, "ZM_R", 3);
        PARAM(bug, "ZM_BUG", 0);
        PARAM(deadline, "ZM_DEADLINE", 0);
        atomic {
                i = 0;
                do
                :: i < NP -> claim[i] = NONE; pstate[i] = ACTIVE; i++
                :: else -> break
                od;
                i = 0;
                do
                :: i < NS ->
#ifdef LATEST
                        sfloor[i] = NONE;
#else
                        sfloor[i] = 0;
                        reg[i] = 1;
#endif
                        i++
                :: else -> break
                od;
                i = 0;
                run Prod(0);
                run Prod(1);
                run Sub(0);
#if NS > 1
                run Sub(1);
#endif
                run EvictProd(0);
                run EvictProd(1);
                run EvictSub(0);
#if NS > 1
                run EvictSub(1);
#endif
                run Monitor()
        }
}
