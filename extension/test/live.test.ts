import { Stream } from '@lumino/signaling';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { ILiveEvent, LIVE_SCHEMA_ID, LiveStream } from '../src/live';

function source() {
  const owner = {};
  return { stream: new Stream<any, any>(owner) };
}

function event(seq: number, kind: ILiveEvent['kind'] = 'run', boot = 'b1'): any {
  return { schema_id: LIVE_SCHEMA_ID, kind, seq, boot, time: 1 };
}

describe('the live stream', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function open() {
    const events = source();
    const live = new LiveStream(events);
    const seen: number[] = [];
    const resyncs: string[] = [];
    live.event.connect((_, e) => seen.push(e.seq));
    live.resync.connect((_, why) => resyncs.push(why));
    return { events, live, seen, resyncs };
  }

  it('passes consecutive events on and ignores other schemas', () => {
    const { events, seen, resyncs } = open();
    [5, 6, 7].forEach(seq => events.stream.emit(event(seq)));
    events.stream.emit({ schema_id: 'https://events.jupyter.org/jupyter_server/contents_service/v1', seq: 99 });
    expect(seen).toEqual([5, 6, 7]);
    expect(resyncs).toEqual([]);
  });

  it('asks for a resync after a gap, a restart, or a heartbeat ahead of what was seen', () => {
    const { events, seen, resyncs } = open();
    events.stream.emit(event(1));
    events.stream.emit(event(4));
    events.stream.emit(event(5, 'heartbeat'));
    events.stream.emit(event(5, 'heartbeat'));
    events.stream.emit(event(1, 'run', 'b2'));
    expect(seen).toEqual([1, 4, 1]); // heartbeats are not events
    expect(resyncs).toEqual(['missed events before #4', 'missed events before #5', 'the server restarted']);
  });

  it('marks the connection lost after a silence of a few heartbeats, and resyncs when it is back', () => {
    const { events, live, resyncs } = open();
    const changes: boolean[] = [];
    live.connectedChanged.connect((_, connected) => changes.push(connected));
    events.stream.emit(event(1, 'heartbeat'));
    vi.advanceTimersByTime(1000);
    events.stream.emit(event(1, 'heartbeat')); // the server beats every second
    vi.advanceTimersByTime(2000);
    expect(live.connected).toBe(true);
    vi.advanceTimersByTime(1000);
    expect(live.connected).toBe(false);
    events.stream.emit(event(1, 'heartbeat'));
    expect(changes).toEqual([false, true]);
    expect(resyncs).toEqual(['the connection came back']);
  });

  it('resyncs when the first message comes after a silence (the page loaded its state, then lost the socket)', () => {
    const { events, live, resyncs } = open();
    vi.advanceTimersByTime(60_000); // no message at all since the page loaded
    expect(live.connected).toBe(false);
    events.stream.emit(event(7, 'heartbeat'));
    expect(live.connected).toBe(true);
    expect(resyncs).toEqual(['the connection came back']);
  });

  it('stops listening when disposed', () => {
    const { events, live, seen } = open();
    live.dispose();
    events.stream.emit(event(1));
    expect(seen).toEqual([]);
  });
});
