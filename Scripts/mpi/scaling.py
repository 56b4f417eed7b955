#!/usr/bin/env python3
"""A scaling model on paper for data-parallel training over N nodes, from figures measured on one machine
(Scripts/mpi/bench.py's table): each node computes a step of its own batch in the measured time of one process on
this machine, and a ring allreduce sends and receives 2(N-1)/N of the gradient bytes per node per step, in
2(N-1) messages per bucket.

    Scripts/mpi/scaling.py BENCH_TABLE.md [--latency-us 30] [--nodes 4,8,16,32,64] [--gbits 10,100]

For each network and link speed it prints the communication time per step, the scaling efficiency with no overlap
(step = compute + communication) and with perfect overlap (step = the larger of the two), and the node count from
which communication alone takes longer than the computation (communication-bound even with perfect overlap).
"""
import argparse, re

def parse(path):
    rows = {}
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 8 or not re.match(r"^[a-z]", cells[0]) or cells[0] == "network":
            continue
        one = float(cells[1].replace(",", ""))
        mb, buckets = re.match(r"([\d.]+) \((\d+)\)", cells[6]).groups()
        rows[cells[0]] = (one, float(mb), int(buckets))
    return rows

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("table")
    parser.add_argument("--batch", type=int, default=32, help="images per node per step (the bench's batch)")
    parser.add_argument("--latency-us", type=float, default=30.0, help="per message (TCP on a LAN: tens of microseconds)")
    parser.add_argument("--nodes", default="4,8,16,32,64")
    parser.add_argument("--gbits", default="10,100")
    args = parser.parse_args()
    nodes = [int(n) for n in args.nodes.split(",")]
    print("| network | link | compute ms/step (one node) | gradient MB | " + " | ".join(f"N={n}: comm ms, efficiency no overlap / overlap" for n in nodes)
          + " | communication-bound from |")
    print("|---|---|---|---|" + "---|" * len(nodes) + "---|")
    for model, (speed, mb, buckets) in parse(args.table).items():
        compute = args.batch / speed * 1000
        for gbit in (float(g) for g in args.gbits.split(",")):
            cells, bound = [], None
            for n in range(2, 4097):
                comm = 2 * (n - 1) / n * mb * 1_048_576 * 8 / (gbit * 1e9) * 1000 + 2 * (n - 1) * buckets * args.latency_us / 1000
                if bound is None and comm >= compute:
                    bound = n
                if n in nodes:
                    cells.append(f"{comm:.1f}, {compute / (compute + comm):.0%} / {compute / max(compute, comm):.0%}")
            print(f"| {model} | {gbit:g} Gbit/s | {compute:.1f} | {mb:.1f} | " + " | ".join(cells)
                  + f" | {('N = %d' % bound) if bound else 'never (up to 4096)'} |")

main()
