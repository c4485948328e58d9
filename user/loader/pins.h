/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Pins under the pin root (pins.c): the helpers every loader shares. */
#ifndef SL_PINS_H
#define SL_PINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/bpf.h>
#include <linux/types.h>

struct bpf_object;
struct bpf_link_info;

/* Call fn for every entry of the pinned map pin_root/name keyed by a u64
 * (cookie-keyed: sl_conns, sl_connect_reason); val is the caller's buffer
 * for one value. Stops at the first non-zero return. 0 or -errno.
 */
int sl_pin_foreach_u64(const char *pin_root, const char *name, void *val,
		       int (*fn)(uint64_t key, const void *val, void *ctx),
		       void *ctx);

/* A pinned cgroup link whose cgroup is gone (its container restarted: the
 * new one has a new cgroup) is detached and its pin removed, so the next
 * attach replaces it. 1 dropped, 0 kept (alive), -ENOENT none, -errno.
 */
int sl_link_drop_if_orphaned(const char *pin_root, const char *name);
/* prog attached to the cgroup at cgpath, its link pinned as pin; a pinned
 * link is reused if it serves that cgroup (another one is refused with
 * -EEXIST: detach first). prog NULL: reuse only (-ENOENT if not pinned).
 * 0 or -errno (said).
 */
struct bpf_program;
int sl_cgroup_link_ensure(const char *pin_root, struct bpf_program *prog,
			  const char *pin, const char *cgpath);
/* Build "<pin_root>/<name>" into buf. Returns 0 or -ENAMETOOLONG. */
int sl_pin_path(char *buf, size_t len, const char *pin_root, const char *name);
/* Compare every map of obj (opened, not loaded) that is already pinned under
 * pin_root with its definition here: type, key and value size, max entries,
 * flags. 0 when all match or are not pinned yet (an added map is simply
 * created: an additive upgrade), -EPROTO with a message naming the map and
 * the way out when one differs.
 */
int sl_obj_check_pins(struct bpf_object *obj, const char *pin_root);
/* Sizing (limits.max_conns): the tables that grow with connections take
 * their max_entries from max_conns in every object opened after this; 0
 * keeps the sizes compiled in. Called once by `run`, before it attaches.
 */
void sl_sizing_set(uint32_t max_conns);
/* Right after opening obj: its sized maps get their max_entries, a map
 * already pinned under pin_root (NULL: none) keeps its own, since pinned
 * maps are reused as they are; a configured size it does not have is
 * said once per map (it applies after `sidelane detach`).
 */
void sl_obj_size_maps(struct bpf_object *obj, const char *pin_root);
/* Give every map of obj its pin path pin_root/<map name> before load, so
 * libbpf reuses a pinned map whose definition matches (state survives a
 * restart) and pins new ones. Socket-storage maps are skipped when
 * skip_sk_storage (their data lives with the sockets). 0 or -errno.
 */
int sl_obj_pin_maps(struct bpf_object *obj, const char *pin_root,
		    int skip_sk_storage);
/* Make sure pin_root exists on a bpffs (mounting /sys/fs/bpf if that is
 * where it goes and nothing is mounted); *created: it is new. 0 or -errno.
 */
int sl_pin_root_ensure(const char *pin_root, int *created);
/* bpf_obj_get() of pin_root/name (fd or -errno); unlink it (0 if absent). */
int sl_pin_open(const char *pin_root, const char *name);
/* Call fn for every pin directly under pin_root with its name and an fd
 * of it (closed after the call). 0, or -errno when the folder cannot be
 * read.
 */
int sl_pin_foreach(const char *pin_root,
		   void (*fn)(const char *name, int fd, void *ctx), void *ctx);
int sl_pin_unlink(const char *pin_root, const char *name);

/* Detach the link pinned as pin_root/name now (whoever else holds it) and
 * unpin it; 0 if absent, else the first -errno.
 */
int sl_pin_link_detach(const char *pin_root, const char *name);
/* Sum, over CPUs, a per-CPU value made only of __u64 counters. 0 or -errno. */
int sl_percpu_sum_u64(int fd, __u32 key, void *out, size_t size);
/* Attach a sockmap program (sk_msg, sk_skb verdict) to map_fd: a sockmap
 * bpf_link where the kernel has them (6.10+), *link_fd its fd; else
 * BPF_PROG_ATTACH, *link_fd -1, and the map keeps the program for as long
 * as it lives (bpf_prog_detach2() takes it off). 0 or -errno.
 */
int sl_map_prog_attach(int prog_fd, int map_fd, enum bpf_attach_type type,
		       int *link_fd);
/* Slot 0 of the single-entry array pinned as pin_root/name: read into
 * value, or written from it (put). 0 or -errno (-ENOENT: not pinned).
 */
int sl_pin_slot0(const char *pin_root, const char *name, void *value,
		 bool put);
/* sl_pin_open(), and a warning naming the pin when it is not there. */
int sl_pin_open_said(const char *pin_root, const char *name);
/* Empty a map (keys of at most 64 bytes). */
void sl_map_clear(int fd);
/* bpf_obj_get_info_by_fd() of a link: 0 or -errno. */
int sl_link_info(int link_fd, struct bpf_link_info *info);
/* The same for the link pinned as pin_root/name (-ENOENT: not pinned). */
int sl_pinned_link_info(const char *pin_root, const char *name,
			struct bpf_link_info *info);

#endif /* SL_PINS_H */
