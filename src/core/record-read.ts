/**
 * Reading a record accessor's place from an event: through the record view (src/core/record-view.ts)
 * while the record is still msgpack bytes, from the decoded record otherwise. Both answer alike;
 * where the view cannot (a map key that is not a string, an extension value on the path) it
 * throws ViewUnsupported and the record is decoded instead.
 */
import type { LogEvent } from './event.js';
import type { RecordAccessor } from './record-accessor.js';
import { sharedView, ViewUnsupported } from './record-view.js';
import { WireEvent } from './wire-event.js';

const INDEX = /^(0|[1-9][0-9]*)$/;

/**
 * Whether the view reads `accessor`'s place exactly as the accessor does: a sub-key that looks
 * like an array index (`['0']`) the view would read as an index, where the accessor reads only a
 * map key.
 */
export function viewable(accessor: RecordAccessor): boolean {
  return accessor.path.every((p, i) => i === 0 || typeof p === 'number' || !INDEX.test(p));
}

/**
 * The value at `accessor` in `e`'s record (its pending edits applied), or undefined. With
 * `byView` false (an accessor that is not viewable) the record is decoded.
 */
export function readAccessor(e: LogEvent, accessor: RecordAccessor, byView: boolean): unknown {
  if (byView && e instanceof WireEvent && e.isBytes) {
    try {
      if (e.open(sharedView)) return sharedView.get(accessor.path);
    } catch (err) {
      if (!(err instanceof ViewUnsupported)) throw err;
    }
  }
  return accessor.get(e.record);
}
