/** The filesystem buffer's metrics. */
import type { Metrics } from '../../observe/metrics.js';

export type StorageMetrics = ReturnType<typeof storageMetrics>;

export function storageMetrics(metrics: Metrics) {
  return {
    chunks: metrics.gauge('logwarden_storage_chunks', 'Filesystem-buffered chunks by state: up (in memory), down (on disk only), writing', ['state']),
    memory: metrics.gauge('logwarden_storage_memory_bytes', 'Estimated memory of buffered events (3x chunk file bytes): up (queued or being read back), writing (waiting for their write)', ['state']),
    bytes: metrics.gauge('logwarden_storage_bytes', 'Bytes of chunk files in the filesystem buffer', []),
    outputBytes: metrics.gauge('logwarden_storage_output_bytes', 'Bytes of buffered chunks an output has not committed (storage.total_limit_size counts this)', ['name']),
    memoryLimit: metrics.gauge(
      'logwarden_storage_memory_limit_bytes',
      'Bound of logwarden_storage_memory_bytes by state: up (half of memory_limit, split evenly between outputs), writing (an eighth)',
      ['state'],
    ),
    outputLimit: metrics.gauge('logwarden_storage_output_limit_bytes', "An output's storage.total_limit_size (only outputs that set it)", ['name']),
    written: metrics.counter('logwarden_storage_chunks_written_total', 'Chunks written to the filesystem buffer, by input', ['name']),
    writeErrors: metrics.counter('logwarden_storage_write_errors_total', 'Chunk writes that failed, by input and errno', ['name', 'reason']),
    unbuffered: metrics.counter('logwarden_storage_unbuffered_chunks_total', 'Chunks of filesystem inputs kept in memory only (acked after delivery): total_limit_size, disk_full, write_error', [
      'name',
      'reason',
    ]),
    replayed: metrics.counter('logwarden_storage_replayed_chunks_total', 'Chunks read back from the filesystem buffer', []),
    quarantined: metrics.counter('logwarden_storage_quarantined_chunks_total', 'Torn or corrupt chunk files moved to quarantine/, by reason', ['reason']),
    skipped: metrics.counter('logwarden_storage_skipped_files_total', 'Files named like chunks that were left alone at start: not_a_file (FIFO, socket, device, directory) or unreadable', ['reason']),
    dropped: metrics.counter('logwarden_storage_dropped_records_total', 'Buffered records an output will never get, by reason', ['name', 'reason']),
  };
}
