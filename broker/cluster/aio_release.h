/* broker/cluster/aio_release.h: kernel AIO contexts released off the event loop.
 *
 * libraft 0.15's raft_uv gives each Raft log segment a kernel AIO context and destroys it with
 * io_destroy(2) when the segment closes (when it is full, and at every snapshot), on the thread
 * that closes it: Warren's event loop. io_destroy waits until the kernel has retired the
 * context, two RCU grace periods, 25-40 ms on this project's machines, and for that long the
 * node serves no connection at all (docs/cluster.md, "Snapshots and pauses").
 *
 * libraft (and libuv) make the call through libc's syscall(3). aio_release.c defines syscall in
 * the broker's executable, which the dynamic linker binds those libraries to (an executable's
 * symbols come first in its lookup): io_destroy is handed to a thread of its own and the caller
 * told 0 at once; every other call goes to libc's syscall unchanged. A context is destroyed only
 * once its owner is done with it (raft_uv closes a segment's writer once its writes completed),
 * so nothing reads or writes through it in between, and one not yet destroyed at exit is
 * released by the kernel with the process. */
#ifndef WARREN_AIO_RELEASE_H
#define WARREN_AIO_RELEASE_H

#include <stdbool.h>

/* Resolves libc's syscall and starts the releasing thread (once; later calls do nothing).
 * Called by cluster_node_start, which also links this file into the executable. False when
 * either failed: io_destroy then runs where it is called, as without this file. */
bool aio_release_start(void);

/* io_destroy calls handed to the thread so far, and completed by it (for tests). */
unsigned long aio_release_handed(void);
unsigned long aio_release_done(void);

#endif
