/*
 * timer.c - the loop's timers: a pairing heap linked through the timers
 * themselves, so arming, moving and disarming never allocate.
 *
 * Every node keeps its first child, its next sibling and |prev| (its
 * previous sibling, or its parent when it is the first child; NULL at the
 * root). Melding two heaps makes the later root the first child of the
 * earlier one; taking the root pairs its children left to right and melds
 * the pairs right to left (amortised O(log n)); taking any other node cuts
 * it out of its sibling list and melds its children back in.
 */
#include "loop/loop_int.h"

/* Melds two heap roots (either may be NULL); returns the new root. */
static nana_loop_timer *meld(nana_loop_timer *a, nana_loop_timer *b)
{
    if (!a) return b;
    if (!b) return a;
    if (b->when < a->when) {
        nana_loop_timer *t = a;
        a = b;
        b = t;
    }
    b->prev = a;
    b->sibling = a->child;
    if (a->child) a->child->prev = b;
    a->child = b;
    return a;
}

/* Turns a list of siblings (the children of a removed node) into one heap. */
static nana_loop_timer *merge_pairs(nana_loop_timer *first)
{
    nana_loop_timer *stack = NULL; /* melded pairs, the last one on top */
    while (first) {
        nana_loop_timer *a = first, *b = a->sibling;
        first = b ? b->sibling : NULL;
        a->sibling = a->prev = NULL;
        if (b) {
            b->sibling = b->prev = NULL;
            a = meld(a, b);
        }
        a->sibling = stack;
        stack = a;
    }
    nana_loop_timer *root = NULL;
    while (stack) {
        nana_loop_timer *n = stack;
        stack = n->sibling;
        n->sibling = NULL;
        root = meld(root, n);
    }
    return root;
}

/* Takes armed timer |t| out of the heap. */
static void heap_remove(nana_loop *loop, nana_loop_timer *t)
{
    if (t == loop->timers) {
        loop->timers = merge_pairs(t->child);
    } else {
        if (t->prev->child == t)
            t->prev->child = t->sibling;
        else
            t->prev->sibling = t->sibling;
        if (t->sibling) t->sibling->prev = t->prev;
        loop->timers = meld(loop->timers, merge_pairs(t->child));
    }
    t->child = t->sibling = t->prev = NULL;
    t->armed = false;
}

void nana_loop_timer_init(nana_loop_timer *t, void (*fn)(nana_loop *loop, nana_loop_timer *t))
{
    t->when = 0;
    t->fn = fn;
    t->child = t->sibling = t->prev = NULL;
    t->seq = 0;
    t->armed = false;
}

void nana_loop_timer_start(nana_loop *loop, nana_loop_timer *t, uint64_t when)
{
    if (t->armed) heap_remove(loop, t);
    t->when = when;
    t->seq = ++loop->timer_seq;
    t->armed = true;
    loop->timers = meld(loop->timers, t);
}

void nana_loop_timer_stop(nana_loop *loop, nana_loop_timer *t)
{
    if (t->armed) heap_remove(loop, t);
}

bool nana_loop_timer_armed(const nana_loop_timer *t)
{
    return t->armed;
}

/*
 * Fires the timers due at loop->now, earliest first. A timer armed while
 * they fire (one that re-arms itself for a time already past, say) waits
 * for the next iteration, so this always ends.
 */
void nana_loop_timers_run(nana_loop *loop)
{
    uint64_t last = loop->timer_seq;
    while (loop->timers && loop->timers->when <= loop->now && loop->timers->seq <= last) {
        nana_loop_timer *t = loop->timers;
        heap_remove(loop, t);
        t->fn(loop, t);
    }
}
