#!/usr/bin/env python3
"""Figures for scripts/bench.sh: one JSON line per measured point, then a
summary with the ratios service/pgbench, a CSV, and an SVG plot.

  bench-report.py pgbench KIND C PGBENCH_OUTPUT LOG...   -> one JSON line
  bench-report.py load KIND C LOAD_JSON SERIES           -> one JSON line
  bench-report.py watch WATCH_JSON                       -> one JSON line
  bench-report.py etcd SERIES KIND C BENCHMARK_OUTPUT    -> one JSON line
  bench-report.py etcd-rate BENCHMARK_OUTPUT             -> its requests/s, an integer
  bench-report.py summary RESULTS_JSONL OUT_DIR CORES    -> files + table
"""

import csv
import json
import re
import sys


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index]


def pgbench_point(kind, c, output, logs):
    text = open(output).read()
    tps = float(re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text).group(1))
    latencies = []
    for log in logs:
        for line in open(log):
            fields = line.split()
            # client_id transaction_no latency_us script_no epoch epoch_us
            latencies.append(int(fields[2]) / 1000.0)
    latencies.sort()
    return {
        "series": "pgbench", "kind": kind, "concurrency": int(c), "throughput": tps,
        "p50_ms": percentile(latencies, 0.50), "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else None, "errors": {},
    }


def etcd_summary(path):
    """The last summary printed by etcd's benchmark tool (tools/benchmark,
    pkg/report): for watch-latency, the watch events' summary, which comes
    after the puts'. Returns requests/s, the latency percentiles in ms, the
    slowest in ms and the error distribution."""
    text = open(path).read()
    section = text.rsplit("Summary:", 1)[-1] if "Summary:" in text else ""
    if "Watch events summary:" in text:
        section = text.split("Watch events summary:", 1)[1]
    rps = re.search(r"Requests/sec:\s+([0-9.e+-]+)", section)
    if not rps:
        sys.exit(f"no summary in the etcd benchmark output {path}:\n{text[-2000:]}")
    pct = {float(q): float(v) * 1000.0
           for q, v in re.findall(r"^\s+([0-9.]+)% in ([0-9.e+-]+) secs", section, re.M)}
    slowest = re.search(r"Slowest:\s+([0-9.e+-]+) secs", section)
    # "Error distribution:" then one "  [count]\terror" line per error.
    errors = {}
    if "Error distribution:" in section:
        for count, message in re.findall(r"^\s+\[(\d+)\]\s+(.*)$", section.split("Error distribution:", 1)[1], re.M):
            errors[message.strip()[:120]] = int(count)
    return float(rps.group(1)), pct, float(slowest.group(1)) * 1000.0 if slowest else None, errors


def etcd_point(series, kind, c, path):
    rps, pct, slowest, errors = etcd_summary(path)
    return {
        "series": series, "kind": kind, "concurrency": int(c), "throughput": rps,
        "p50_ms": pct.get(50.0), "p99_ms": pct.get(99.0), "max_ms": slowest, "errors": errors,
    }


def load_point(kind, c, path, series):
    report = json.load(open(path))
    latency = report[kind] or {}
    return {
        "series": series, "kind": kind, "concurrency": int(c),
        "throughput": latency.get("throughput", 0.0),
        "p50_ms": latency.get("p50_ms"), "p99_ms": latency.get("p99_ms"),
        "max_ms": latency.get("max_ms"), "errors": report["errors"],
        "decisions": report["decisions"],
    }


SERIES_STYLE = {"service": "#1f77b4", "unbatched": "#9467bd", "patch": "#2ca02c",
                "pgbench": "#d62728", "ceiling": "#7f7f7f", "etcd": "#ff7f0e",
                "etcd-serializable": "#8c564b"}


def svg_panel(points, kind, metric, x0, y0, w, h, title, log_y):
    """One chart: `metric` of `kind` against concurrency, a line per series."""
    import math
    cs = sorted({p["concurrency"] for p in points})
    values = [p[metric] for p in points if p["kind"] == kind and p[metric]]
    if not cs or not values:
        return []
    hi = max(values) * 1.15
    lo = min(values) / 1.5 if log_y else 0.0
    def x(c):
        return x0 + 50 + (w - 70) * (cs.index(c) / max(1, len(cs) - 1))
    def y(v):
        if log_y:
            return y0 + h - 30 - (h - 50) * (math.log(v / lo) / math.log(hi / lo))
        return y0 + h - 30 - (h - 50) * (v / hi)
    out = [f'<text x="{x0 + w / 2}" y="{y0 + 14}" text-anchor="middle" font-weight="bold">{title}</text>',
           f'<line x1="{x0 + 50}" y1="{y0 + h - 30}" x2="{x0 + w - 20}" y2="{y0 + h - 30}" stroke="#444"/>',
           f'<line x1="{x0 + 50}" y1="{y0 + 20}" x2="{x0 + 50}" y2="{y0 + h - 30}" stroke="#444"/>']
    for c in cs:
        out.append(f'<text x="{x(c)}" y="{y0 + h - 14}" text-anchor="middle">{c}</text>')
    ticks = [lo * (hi / lo) ** (i / 4) for i in range(5)] if log_y else [hi * i / 4 for i in range(5)]
    for t in ticks:
        label = f"{t:.1f}" if t < 10 else f"{t:.0f}"
        out.append(f'<text x="{x0 + 45}" y="{y(t) + 4}" text-anchor="end">{label}</text>')
        out.append(f'<line x1="{x0 + 50}" y1="{y(t)}" x2="{x0 + w - 20}" y2="{y(t)}" stroke="#ddd"/>')
    for series, color in SERIES_STYLE.items():
        line = sorted((p["concurrency"], p[metric]) for p in points
                      if p["kind"] == kind and p["series"] == series and p[metric])
        if not line:
            continue
        path = " ".join(f"{x(c):.1f},{y(v):.1f}" for c, v in line)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for c, v in line:
            out.append(f'<circle cx="{x(c):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"/>')
    return out


def write_svg(points, path):
    w, h = 420, 260
    # Watch fan-out (etcd only) is in the table and the JSON, not plotted.
    points = [p for p in points if p["kind"] in ("sync", "get")]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w}" height="{2 * h + 66}" '
             'font-family="sans-serif" font-size="11">',
             '<rect width="100%" height="100%" fill="white"/>']
    parts += svg_panel(points, "sync", "throughput", 0, 0, w, h, "Sync: calls/s vs concurrency", False)
    parts += svg_panel(points, "get", "throughput", w, 0, w, h, "Get: calls/s vs concurrency", False)
    parts += svg_panel(points, "sync", "p99_ms", 0, h, w, h, "Sync: p99 ms (log) vs concurrency", True)
    parts += svg_panel(points, "get", "p99_ms", w, h, w, h, "Get: p99 ms (log) vs concurrency", True)
    labels = {"service": "service (batched)", "unbatched": "service --batch-max 1",
              "patch": "service, per-field patches (Sync)",
              "pgbench": "pgbench, same SQL", "ceiling": "gRPC alone, no store (Get)",
              "etcd": "etcd: CAS txn (Sync), linearizable range",
              "etcd-serializable": "etcd: serializable range (Get)"}
    shown = [(series, color) for series, color in SERIES_STYLE.items()
             if any(p["series"] == series for p in points)]
    for i, (series, color) in enumerate(shown):
        x, y = 10 + (i % 3) * 280, 2 * h + 14 + (i // 3) * 16
        parts.append(f'<rect x="{x}" y="{y}" width="14" height="4" fill="{color}"/>')
        parts.append(f'<text x="{x + 18}" y="{y + 6}">{labels[series]}</text>')
    parts.append("</svg>")
    open(path, "w").write("\n".join(parts) + "\n")


def summary(results, out_dir, cores):
    rows = [json.loads(line) for line in open(results) if line.strip()]
    points = [r for r in rows if r["series"] != "watch"]
    watch = next((r for r in rows if r["series"] == "watch"), None)
    def find(series, kind, c):
        return next((p for p in points if (p["series"], p["kind"], p["concurrency"]) == (series, kind, c)), None)
    ratios = []
    for c in sorted({p["concurrency"] for p in points}):
        row = {"concurrency": c}
        for kind in ("sync", "get"):
            svc, base, unb = find("service", kind, c), find("pgbench", kind, c), find("unbatched", kind, c)
            if svc and base and base["throughput"]:
                row[f"{kind}_ratio"] = svc["throughput"] / base["throughput"]
            if unb and base and base["throughput"]:
                row[f"{kind}_ratio_unbatched"] = unb["throughput"] / base["throughput"]
            if svc:
                row[f"{kind}_p99_ms"] = svc["p99_ms"]
            patch = find("patch", kind, c)
            if patch and svc and svc["throughput"]:
                row[f"{kind}_patch_ratio_whole"] = patch["throughput"] / svc["throughput"]
                row[f"{kind}_patch_p99_ms"] = patch["p99_ms"]
            ceiling = find("ceiling", kind, c)
            if ceiling and base and base["throughput"]:
                row[f"{kind}_ratio_ceiling"] = ceiling["throughput"] / base["throughput"]
            # service / etcd: Sync against a compare-and-put transaction,
            # Get against a linearizable and a serializable range.
            for series, key in (("etcd", "etcd"), ("etcd-serializable", "etcd_serializable")):
                other = find(series, kind, c)
                if other and svc and other["throughput"]:
                    row[f"{kind}_ratio_{key}"] = svc["throughput"] / other["throughput"]
                    row[f"{kind}_{key}_p99_ms"] = other["p99_ms"]
        ratios.append(row)
    figures = {"cores": int(cores), "points": points, "ratios": ratios, "watch": watch}
    json.dump(figures, open(f"{out_dir}/performance.json", "w"), indent=1)
    with open(f"{out_dir}/performance.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["series", "kind", "concurrency", "throughput", "p50_ms", "p99_ms", "max_ms", "errors"])
        for p in sorted(points, key=lambda p: (p["kind"], p["series"], p["concurrency"])):
            out.writerow([p["series"], p["kind"], p["concurrency"], f"{p['throughput']:.0f}",
                          p["p50_ms"], p["p99_ms"], p["max_ms"], sum(p["errors"].values())])
    write_svg(points, f"{out_dir}/performance.svg")
    print(f"{'c':>3} {'kind':<5} {'service/s':>10} {'unbatched/s':>12} {'pgbench/s':>10} "
          f"{'ratio':>6} {'p99 ms':>7} {'pg p99':>7} {'gRPC alone/s':>13}")
    for kind in ("sync", "get"):
        for row in ratios:
            c = row["concurrency"]
            svc, unb, base = find("service", kind, c), find("unbatched", kind, c), find("pgbench", kind, c)
            def f(p, key, fmt):
                return format(p[key], fmt) if p and p.get(key) is not None else "-"
            ratio = row.get(f"{kind}_ratio")
            print(f"{c:>3} {kind:<5} {f(svc, 'throughput', '10.0f'):>10} {f(unb, 'throughput', '12.0f'):>12} "
                  f"{f(base, 'throughput', '10.0f'):>10} {format(ratio, '6.2f') if ratio else '-':>6} "
                  f"{f(svc, 'p99_ms', '7.2f'):>7} {f(base, 'p99_ms', '7.2f'):>7} "
                  f"{f(find('ceiling', kind, c), 'throughput', '13.0f'):>13}")
    patches = [row for row in ratios if "sync_patch_ratio_whole" in row]
    if patches:
        print(f"{'c':>3} {'patch Sync/s':>13} {'whole Sync/s':>13} {'patch/whole':>12} {'patch p99 ms':>13}")
        for row in patches:
            c = row["concurrency"]
            print(f"{c:>3} {find('patch', 'sync', c)['throughput']:>13.0f} "
                  f"{find('service', 'sync', c)['throughput']:>13.0f} "
                  f"{row['sync_patch_ratio_whole']:>12.2f} {row['sync_patch_p99_ms'] or 0:>13.2f}")
    etcd_rows = [p for p in points if p["series"].startswith("etcd")]
    if etcd_rows:
        print(f"{'c':>3} {'kind':<5} {'service/s':>10} {'etcd/s':>9} {'svc/etcd':>9} {'etcd p99':>9} "
              f"{'etcd ser/s':>11} {'svc/ser':>8} {'ser p99':>8}")
        for kind in ("sync", "get"):
            for row in ratios:
                c = row["concurrency"]
                svc, lin, ser = find("service", kind, c), find("etcd", kind, c), find("etcd-serializable", kind, c)
                if not (lin or ser):
                    continue
                def g(p, key, fmt):
                    return format(p[key], fmt) if p and p.get(key) is not None else "-"
                def r(key):
                    return format(row[key], ".2f") if key in row else "-"
                print(f"{c:>3} {kind:<5} {g(svc, 'throughput', '.0f'):>10} {g(lin, 'throughput', '.0f'):>9} "
                      f"{r(f'{kind}_ratio_etcd'):>9} {g(lin, 'p99_ms', '.2f'):>9} "
                      f"{g(ser, 'throughput', '.0f'):>11} {r(f'{kind}_ratio_etcd_serializable'):>8} "
                      f"{g(ser, 'p99_ms', '.2f'):>8}")
        for p in sorted((p for p in etcd_rows if p["kind"] == "watch"), key=lambda p: p["concurrency"]):
            print(f"{p['concurrency']:>3} etcd watch fan-out: {p['throughput']:.0f} events/s, "
                  f"p50 {p['p50_ms']:.2f} ms, p99 {p['p99_ms']:.2f} ms (put reply to event)")
    if watch:
        per = watch.get("bytes_per_stream")
        print(f"watch: {watch['streams_open']}/{watch['streams_requested']} idle streams open, "
              f"{watch['streams_failed']} failed, server RSS {watch.get('server_rss_before_kib')} -> "
              f"{watch.get('server_rss_after_kib')} KiB, "
              f"{(per / 1024 if per else 0):.1f} KiB per stream")


def failed_points(results):
    rows = [json.loads(line) for line in open(results) if line.strip()]
    return [r for r in rows if r["series"] != "watch" and sum((r.get("errors") or {}).values())]


def main(argv):
    mode = argv[1]
    if mode == "pgbench":
        print(json.dumps(pgbench_point(argv[2], argv[3], argv[4], argv[5:])))
    elif mode == "load":
        print(json.dumps(load_point(argv[2], argv[3], argv[4], argv[5])))
    elif mode == "watch":
        print(json.dumps(dict(json.load(open(argv[2])), series="watch")))
    elif mode == "etcd":
        print(json.dumps(etcd_point(argv[2], argv[3], argv[4], argv[5])))
    elif mode == "etcd-rate":
        print(max(1, int(etcd_summary(argv[2])[0])))
    elif mode == "summary":
        summary(argv[2], argv[3], argv[4])
        failed = failed_points(argv[2])
        if failed:
            # A point whose calls failed measured the failure path, not the
            # system: the figures are written, but the run fails.
            for p in failed:
                print(f"bench: {p['series']} {p['kind']} at {p['concurrency']} clients: "
                      f"failed calls {p['errors']}", file=sys.stderr)
            sys.exit(1)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
