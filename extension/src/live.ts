/**
 * Live updates pushed by the server (see `flowdapt/server/live.py`) through jupyter_server's event
 * bus, which Lab already streams to the page (`serviceManager.events`).
 *
 * Lab reconnects a dropped event socket on its own but says nothing, so the stream checks what it
 * gets: events of one server start (`boot`) are numbered without gaps (`seq`), and a heartbeat
 * repeats the last number. A gap, a new `boot`, a heartbeat ahead of what was seen, or the first
 * message after a silence longer than a few heartbeats emits `resync`: the model then reloads from
 * the REST API.
 */
import type { Event } from '@jupyterlab/services';
import type { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import type { RunSource, RunState, StageRun, TriggerFiring } from './api';

export const LIVE_SCHEMA_ID = 'https://flowdapt.org/events/workbench';

/** What a run event says about its run. */
export interface ILiveRun {
  uid: string;
  name: string;
  workflow: string;
  state: RunState;
  source: RunSource;
  executor: string;
  namespace: string;
  error?: { type: string; message: string; stage?: string | null } | null;
  duration?: number | null;
}

export interface ILiveEvent {
  kind: 'run' | 'stage' | 'progress' | 'trigger' | 'resource' | 'heartbeat';
  seq: number;
  boot: string;
  /** When it happened on the server, seconds since the epoch. */
  time: number;
  run?: ILiveRun;
  stage?: StageRun;
  firing?: Pick<TriggerFiring, 'trigger' | 'run_uid' | 'error'> & { ok: boolean; action: string; scheduled_for: string | null };
  resource?: { kind: string };
}

/** Where a stream learns of events; Lab's `serviceManager.events` in the page. */
export interface IEventSource {
  readonly stream: Event.Stream;
}

/** The default heartbeat interval of the server, until one is observed. */
const DEFAULT_HEARTBEAT_MS = 10_000;
/** How many heartbeat intervals of silence mean the connection is gone. */
const STALE_AFTER_BEATS = 2.5;

export class LiveStream implements IDisposable {
  constructor(private readonly source: IEventSource, private readonly now: () => number = Date.now) {
    source.stream.connect(this._onEmission, this);
    this._armSilenceTimer();
  }

  /** Every flowdapt event except heartbeats, in order. */
  get event(): ISignal<this, ILiveEvent> {
    return this._event;
  }

  /** Events were missed: reload state from the REST API. The argument says why. */
  get resync(): ISignal<this, string> {
    return this._resync;
  }

  /** Whether messages arrive (false after a silence of a few heartbeat intervals). */
  get connected(): boolean {
    return this._connected;
  }

  get connectedChanged(): ISignal<this, boolean> {
    return this._connectedChanged;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this.source.stream.disconnect(this._onEmission, this);
    clearTimeout(this._staleTimer);
    Signal.clearData(this);
  }

  /** Take one event of the flowdapt schema (public for tests). */
  handle(event: ILiveEvent): void {
    const reason = this._check(event);
    this._watchSilence(event);
    if (!this._connected) {
      this._connected = true;
      this._connectedChanged.emit(true);
    }
    if (event.kind !== 'heartbeat') {
      this._event.emit(event);
    }
    if (reason) {
      this._resync.emit(reason);
    }
  }

  private _onEmission(_: unknown, emission: Event.Emission): void {
    if (emission.schema_id === LIVE_SCHEMA_ID) {
      this.handle(emission as unknown as ILiveEvent);
    }
  }

  /** Why events were missed before `event`, if they were. */
  private _check(event: ILiveEvent): string | null {
    const { boot, seq } = event;
    // Silent since the last message, or since the page loaded its state if none came yet: either way,
    // what happened meanwhile is unknown.
    const wasSilent = !this._connected;
    if (this._boot !== boot) {
      const first = this._boot === null;
      this._boot = boot;
      this._seq = seq;
      if (!first) {
        return 'the server restarted';
      }
      return wasSilent ? 'the connection came back' : null;
    }
    // A heartbeat repeats the last number; an event takes the next one.
    const expected = event.kind === 'heartbeat' ? this._seq : this._seq + 1;
    this._seq = Math.max(this._seq, seq);
    if (seq > expected) {
      return `missed events before #${seq}`;
    }
    return wasSilent ? 'the connection came back' : null;
  }

  private _watchSilence(event: ILiveEvent): void {
    const at = this.now();
    if (event.kind === 'heartbeat') {
      if (this._lastBeat !== null) {
        this._beatMs = Math.max(200, at - this._lastBeat);
      }
      this._lastBeat = at;
    }
    this._armSilenceTimer();
  }

  private _armSilenceTimer(): void {
    clearTimeout(this._staleTimer);
    this._staleTimer = setTimeout(() => {
      this._connected = false;
      this._connectedChanged.emit(false);
    }, this._beatMs * STALE_AFTER_BEATS);
  }

  private _boot: string | null = null;
  private _seq = 0;
  private _connected = true; // the page has just loaded its state
  private _disposed = false;
  private _lastBeat: number | null = null;
  private _beatMs = DEFAULT_HEARTBEAT_MS;
  private _staleTimer: ReturnType<typeof setTimeout> | undefined;
  private _event = new Signal<this, ILiveEvent>(this);
  private _resync = new Signal<this, string>(this);
  private _connectedChanged = new Signal<this, boolean>(this);
}
