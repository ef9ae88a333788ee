// Counters and one histogram, rendered as Prometheus text for GET /metrics.

const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

export function createMetrics() {
  const counters = {
    ferry_ops_applied_total: 0,
    ferry_ops_superseded_total: 0,
    ferry_ops_duplicate_total: 0,
    ferry_ops_rejected_total: 0,
    ferry_batches_total: 0,
    ferry_batches_refused_total: 0,
    ferry_catchup_rows_total: 0,
    ferry_sockets_closed_slow_total: 0,
    ferry_sockets_refused_total: 0,
    ferry_effects_recorded_total: 0,
    ferry_effects_delivered_total: 0,
    ferry_effects_retried_total: 0,
    ferry_effects_failed_total: 0,
  };
  const buckets = LATENCY_BUCKETS_MS.map(() => 0);
  let latencyCount = 0;
  let latencySum = 0;
  let sockets = 0;

  return {
    count(name: keyof typeof counters, by = 1) {
      counters[name] += by;
    },
    socketOpened() {
      sockets++;
    },
    socketClosed() {
      sockets--;
    },
    applyLatency(ms: number) {
      latencyCount++;
      latencySum += ms;
      LATENCY_BUCKETS_MS.forEach((le, i) => {
        if (ms <= le) buckets[i]!++;
      });
    },
    /** `extra`: counters and gauges owned elsewhere (the change bus's), by full name. */
    render(extra: { counters?: Record<string, number>; gauges?: Record<string, number> } = {}): string {
      const lines: string[] = [];
      for (const [name, value] of Object.entries({ ...counters, ...extra.counters })) {
        lines.push(`# TYPE ${name} counter`, `${name} ${value}`);
      }
      for (const [name, value] of Object.entries(extra.gauges ?? {})) lines.push(`# TYPE ${name} gauge`, `${name} ${value}`);
      lines.push('# TYPE ferry_sockets_open gauge', `ferry_sockets_open ${sockets}`);
      lines.push('# TYPE ferry_apply_latency_ms histogram');
      LATENCY_BUCKETS_MS.forEach((le, i) => lines.push(`ferry_apply_latency_ms_bucket{le="${le}"} ${buckets[i]}`));
      lines.push(`ferry_apply_latency_ms_bucket{le="+Inf"} ${latencyCount}`);
      lines.push(`ferry_apply_latency_ms_sum ${latencySum}`, `ferry_apply_latency_ms_count ${latencyCount}`);
      return `${lines.join('\n')}\n`;
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
