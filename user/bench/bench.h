/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* `sidelane bench` (user/bench/bench.c). */
#ifndef BENCH_H
#define BENCH_H

int cmd_bench(int argc, char **argv);

#endif /* BENCH_H */
