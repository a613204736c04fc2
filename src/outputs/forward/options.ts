/**
 * The forward output's option table (Fluent Bit's out_forward names), the one declaration of its
 * options: the output and each [NODE] of an upstream file are read with these specs.
 */
import type { OptionTable } from '../../config/schema.js';
import { deliveryOptions } from '../../core/common-options.js';
import type { PluginConfig } from '../../core/plugin.js';
import { clientTlsOptions, keyPasswdOption } from '../tls.js';

export const options = {
  ...deliveryOptions({ batch_size: 5000, workers: 2 }),
  host: { type: 'string', default: '127.0.0.1', description: 'Server host (Fluent Bit, Fluentd or logwarden forward input)' },
  port: { type: 'int', default: 24224, min: 1, max: 65535, description: 'Server port' },
  unix_path: { type: 'string', description: 'Send over this Unix socket instead of TCP' },
  upstream: {
    type: 'string',
    description: 'Fluent Bit upstream file ([UPSTREAM] + [NODE] sections, or YAML upstream_servers) relative to the config file: frames go round robin over its nodes',
  },
  recover_wait: {
    type: 'duration',
    default: 10,
    description: "How long a node that failed is skipped before it is tried again (Fluentd out_forward's recover_wait)",
  },
  tag: {
    type: 'string',
    description: "Outgoing tag, a record accessor template ($TAG, $TAG[n], $key['sub']); default: the event's tag",
  },
  time_as_integer: { type: 'bool', default: false, description: 'Send times as integer seconds (Fluentd v0.12); drops nanoseconds and metadata' },
  retain_metadata_in_forward_mode: {
    type: 'bool',
    default: true,
    description: 'Send event metadata as [[time, metadata], record] entries (Fluent Bit >= 5.0.5 default); off for receivers that only read [time, record]',
  },
  send_options: { type: 'bool', default: false, description: 'Always send the options map with size (implied by require_ack_response, compress gzip and add_option)' },
  require_ack_response: {
    type: 'bool',
    default: false,
    description: 'Send a chunk id and count a frame as delivered only when the server acks it (at-least-once); off: delivered once written',
  },
  compress: { type: 'enum', values: ['text', 'gzip'], default: 'text', description: 'gzip: send CompressedPackedForward frames' },
  add_option: { type: 'multi', description: "Extra entry of the options map, 'key value' (may be given several times)" },
  shared_key: { type: 'string', description: 'Shared key of the HELO/PING/PONG handshake (the server must have the same)' },
  empty_shared_key: { type: 'bool', default: false, description: 'Run the handshake with an empty shared key' },
  self_hostname: { type: 'string', default: 'localhost', description: 'Client hostname sent in PING' },
  username: { type: 'string', description: 'User for servers with user authentication (needs shared_key)' },
  password: { type: 'string', description: 'Password of username' },
  tls: { type: 'bool', default: false, description: 'Use TLS' },
  ...clientTlsOptions('host'),
  ...keyPasswdOption,
  'net.connect_timeout': { type: 'duration', fluentBit: 'time', default: 10, description: 'Seconds to connect, including TLS and waiting for HELO (Fluent Bit default 10)' },
  'net.io_timeout': { type: 'duration', fluentBit: 'time', default: 60, description: 'Seconds to wait for PONG and for each ack before the attempt fails' },
  'net.keepalive': { type: 'bool', default: true, description: 'Keep connections open between batches' },
  'net.keepalive_idle_timeout': { type: 'duration', fluentBit: 'time', default: 30, description: 'Close a kept connection unused this long (Fluent Bit default 30)' },
} as const satisfies OptionTable;

export type ForwardConfig = PluginConfig<'output', typeof options>;
