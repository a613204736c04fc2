/**
 * Loki push bodies. Protobuf is Loki's native push format (pkg/push/push.proto):
 *
 *   message PushRequest      { repeated StreamAdapter streams = 1; }
 *   message StreamAdapter    { string labels = 1; repeated EntryAdapter entries = 2; }
 *   message EntryAdapter     { google.protobuf.Timestamp timestamp = 1; string line = 2;
 *                              repeated LabelPairAdapter structuredMetadata = 3; }
 *   message LabelPairAdapter { string name = 1; string value = 2; }
 *   message Timestamp        { int64 seconds = 1; int32 nanos = 2; }
 *
 * written with protobufjs's Writer the way `pbjs -t static-module` code does (no code generated at
 * run time), then snappy-compressed (block format, what Loki's distributor decodes). JSON is the
 * documented alternative: `{"streams":[{"stream":{..},"values":[["<ns>","line",{meta}?]]}]}`.
 */
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import protobuf from 'protobufjs/minimal.js';
import { compress as snappyCompress } from 'snappy';
import type { EventTime } from '../../core/event.js';

const gzip = promisify(gzipCb);

export interface Entry {
  time: EventTime;
  line: string;
  /** Structured metadata pairs, or undefined. */
  meta: Array<[string, string]> | undefined;
}

export interface Stream {
  /** Sorted label pairs. */
  labels: Array<[string, string]>;
  entries: Entry[];
}

/** A label value in Prometheus / Go quoted form, as Loki's label parser reads it. */
function quote(v: string): string {
  return JSON.stringify(v);
}

/** `{a="x", b="y"}`: the labels string of a protobuf stream. */
export function labelString(labels: ReadonlyArray<[string, string]>): string {
  let s = '{';
  for (let i = 0; i < labels.length; i++) {
    const [k, v] = labels[i]!;
    s += `${i ? ', ' : ''}${k}=${quote(v)}`;
  }
  return `${s}}`;
}

export function encodeProtobuf(streams: readonly Stream[]): Uint8Array {
  const w = protobuf.Writer.create();
  for (const st of streams) {
    w.uint32(0x0a).fork(); // streams = 1
    w.uint32(0x0a).string(labelString(st.labels)); // labels = 1
    for (const e of st.entries) {
      w.uint32(0x12).fork(); // entries = 2
      w.uint32(0x0a).fork(); // timestamp = 1
      if (e.time.sec !== 0) w.uint32(0x08).int64(e.time.sec);
      if (e.time.nsec !== 0) w.uint32(0x10).int32(e.time.nsec);
      w.ldelim();
      if (e.line !== '') w.uint32(0x12).string(e.line); // line = 2
      if (e.meta) {
        for (const [name, value] of e.meta) {
          w.uint32(0x1a).fork(); // structuredMetadata = 3
          w.uint32(0x0a).string(name);
          w.uint32(0x12).string(value);
          w.ldelim();
        }
      }
      w.ldelim();
    }
    w.ldelim();
  }
  return w.finish();
}

export function encodeJSON(streams: readonly Stream[]): string {
  let s = '{"streams":[';
  for (let i = 0; i < streams.length; i++) {
    const st = streams[i]!;
    s += `${i ? ',' : ''}{"stream":{`;
    for (let j = 0; j < st.labels.length; j++) s += `${j ? ',' : ''}${quote(st.labels[j]![0])}:${quote(st.labels[j]![1])}`;
    s += '},"values":[';
    for (let j = 0; j < st.entries.length; j++) {
      const e = st.entries[j]!;
      s += `${j ? ',' : ''}["${e.time.toNanoString()}",${quote(e.line)}`;
      if (e.meta) {
        s += ',{';
        for (let k = 0; k < e.meta.length; k++) s += `${k ? ',' : ''}${quote(e.meta[k]![0])}:${quote(e.meta[k]![1])}`;
        s += '}';
      }
      s += ']';
    }
    s += ']}';
  }
  return `${s}]}`;
}

export type Encoding = 'protobuf' | 'json';

export interface Body {
  body: Uint8Array | string;
  headers: Record<string, string>;
}

/** Encodes and compresses off the main thread (snappy and zlib run in the libuv pool). */
export async function encodeBody(streams: readonly Stream[], encoding: Encoding, gzipJSON: boolean): Promise<Body> {
  if (encoding === 'protobuf') {
    const raw = encodeProtobuf(streams);
    return { body: await snappyCompress(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)), headers: { 'content-type': 'application/x-protobuf' } };
  }
  const json = encodeJSON(streams);
  if (!gzipJSON) return { body: json, headers: { 'content-type': 'application/json' } };
  return { body: await gzip(json), headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } };
}
