/**
 * The Run dialog (an input form generated from the root stages' parameters) and the Schedule
 * notebook dialog (cron, timezone and the notebook's parameters). Both reopen with the user's
 * values and a one-line error until the input is valid or they are cancelled.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import type { InputField, WorkflowInputs } from '../api';
import { collectInput, extraText, FieldValue, initialValues, widgetOf } from '../model/form';

interface IFormState {
  values: Record<string, FieldValue>;
  extra: string;
  /** The executor to run on ('' for the server's default). */
  executor?: string;
}

/** The executors a run may ask for by name. */
export const EXECUTORS = ['local', 'dask', 'ray'];

function FormFields(props: { inputs: WorkflowInputs; state: IFormState; onChange: (state: IFormState) => void }): JSX.Element {
  const { inputs, state, onChange } = props;
  const set = (name: string, value: FieldValue) => onChange({ ...state, values: { ...state.values, [name]: value } });
  const fields = inputs.fields ?? [];
  return (
    <div className="jp-flowdapt-form-fields">
      {fields.map(field => (
        <label key={field.name} className="jp-flowdapt-field" data-field={field.name}>
          <span className="jp-flowdapt-field-label">
            {field.name}
            {field.required && <span className="jp-flowdapt-required" title="required"> *</span>}
            <span className="jp-flowdapt-field-type">{field.annotation ?? field.type ?? 'any'}</span>
          </span>
          <FieldInput field={field} value={state.values[field.name]} onChange={value => set(field.name, value)} />
          {field.description && <span className="jp-flowdapt-field-help">{field.description}</span>}
        </label>
      ))}
      {(inputs.open || fields.length === 0) && (
        <details className="jp-flowdapt-more-input" open={fields.length === 0 || !!state.extra}>
          <summary>More input (JSON object)</summary>
          <textarea className="jp-mod-styled jp-flowdapt-json" rows={4} placeholder='{"key": "value"}' aria-label="More input"
            value={state.extra} onChange={event => onChange({ ...state, extra: event.target.value })} />
        </details>
      )}
    </div>
  );
}

function FieldInput(props: { field: InputField; value: FieldValue | undefined; onChange: (value: FieldValue) => void }): JSX.Element {
  const { field, value, onChange } = props;
  const name = `flowdapt-input-${field.name}`;
  switch (widgetOf(field)) {
    case 'checkbox':
      return <input type="checkbox" name={name} checked={value === true} onChange={event => onChange(event.target.checked)} />;
    case 'select':
      return (
        <select className="jp-mod-styled" name={name} value={String(value ?? '')} onChange={event => onChange(event.target.value)}>
          {!field.required && <option value="">(default)</option>}
          {(field.enum ?? []).map(option => (
            <option key={JSON.stringify(option)} value={JSON.stringify(option)}>{String(option)}</option>
          ))}
        </select>
      );
    case 'json':
      return <textarea className="jp-mod-styled jp-flowdapt-json" name={name} rows={2} value={String(value ?? '')}
        placeholder={field.type === 'array' ? '[1, 2, 3]' : 'JSON'} onChange={event => onChange(event.target.value)} />;
    default:
      return <input className="jp-mod-styled" name={name} type={widgetOf(field) === 'number' ? 'number' : 'text'}
        step={field.type === 'integer' ? 1 : 'any'} value={String(value ?? '')} onChange={event => onChange(event.target.value)} />;
  }
}

/** A dialog body holding form state between reopenings. */
class FormBody<T> extends ReactWidget implements Dialog.IBodyWidget<T> {
  constructor(private readonly draw: (body: FormBody<T>) => JSX.Element, private readonly read: () => T, readonly error: string | null) {
    super();
    this.addClass('jp-flowdapt-form');
  }

  getValue(): T {
    return this.read();
  }

  protected render(): JSX.Element {
    return (
      <>
        {this.draw(this)}
        {this.error && <div className="jp-flowdapt-form-error" role="alert">{this.error}</div>}
      </>
    );
  }
}

export interface IRunRequest {
  input: Record<string, unknown>;
  /** '' for the server's default executor. */
  executor: string;
}

/** Ask for a run's input and executor (`defaultExecutor` is the server's); `undefined` when cancelled. */
export async function askRunInput(title: string, inputs: WorkflowInputs, defaultExecutor = 'local'): Promise<IRunRequest | undefined> {
  let state: IFormState = { values: initialValues(inputs), extra: extraText(inputs), executor: '' };
  let error: string | null = null;
  for (;;) {
    const body: FormBody<IFormState> = new FormBody(self => {
      const set = (next: IFormState) => { state = next; self.update(); };
      return (
        <>
          <FormFields inputs={inputs} state={state} onChange={set} />
          <label className="jp-flowdapt-field jp-flowdapt-executor" data-field="executor">
            <span className="jp-flowdapt-field-label">executor</span>
            <select className="jp-mod-styled" name="flowdapt-executor" value={state.executor}
              onChange={event => set({ ...state, executor: event.target.value })}>
              <option value="">{`server default (${defaultExecutor})`}</option>
              {EXECUTORS.map(name => <option key={name} value={name}>{name}</option>)}
            </select>
          </label>
        </>
      );
    }, () => state, error);
    const result = await showDialog({ title, body, buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })] });
    if (!result.button.accept) {
      return undefined;
    }
    const collected = collectInput(inputs, state.values, state.extra);
    if (collected.input) {
      return { input: collected.input, executor: state.executor ?? '' };
    }
    error = collected.error!;
  }
}

export interface ISchedule {
  name: string;
  cron: string;
  timezone: string;
  enabled: boolean;
  parameters: Record<string, unknown>;
}

interface IScheduleState extends IFormState {
  name: string;
  cron: string;
  timezone: string;
  enabled: boolean;
}

function timezones(): string[] {
  const supported = (Intl as any).supportedValuesOf?.('timeZone') as string[] | undefined;
  return supported?.length ? Array.from(new Set(['UTC', ...supported])) : ['UTC'];
}

/**
 * Ask how to schedule a notebook and `submit` it; the dialog reopens with the error `submit` returns
 * (the server's one-line message, e.g. a malformed cron). `undefined` when cancelled.
 */
export async function askSchedule(notebook: string, name: string, inputs: WorkflowInputs,
                                  submit: (schedule: ISchedule) => Promise<string | null>): Promise<ISchedule | undefined> {
  let state: IScheduleState = {
    name, cron: '0 * * * *', timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC', enabled: true,
    values: initialValues(inputs), extra: ''
  };
  const zones = timezones();
  let error: string | null = null;
  for (;;) {
    const body: FormBody<IScheduleState> = new FormBody(self => {
      const set = (change: Partial<IScheduleState>) => { state = { ...state, ...change }; self.update(); };
      return (
        <div className="jp-flowdapt-schedule">
          <p className="jp-flowdapt-muted">Runs <code>{notebook}</code> with papermill on a schedule; every run keeps its output notebook.</p>
          <label className="jp-flowdapt-field" data-field="trigger-name">
            <span className="jp-flowdapt-field-label">trigger name</span>
            <input className="jp-mod-styled" name="flowdapt-trigger-name" value={state.name} onChange={e => set({ name: e.target.value })} />
          </label>
          <label className="jp-flowdapt-field" data-field="cron">
            <span className="jp-flowdapt-field-label">cron <span className="jp-flowdapt-field-type">minute hour day month weekday [second]</span></span>
            <input className="jp-mod-styled" name="flowdapt-cron" value={state.cron} onChange={e => set({ cron: e.target.value })} />
          </label>
          <label className="jp-flowdapt-field" data-field="timezone">
            <span className="jp-flowdapt-field-label">timezone</span>
            <select className="jp-mod-styled" name="flowdapt-timezone" value={state.timezone} onChange={e => set({ timezone: e.target.value })}>
              {zones.map(zone => <option key={zone} value={zone}>{zone}</option>)}
            </select>
          </label>
          <label className="jp-flowdapt-field jp-flowdapt-field-inline">
            <input type="checkbox" name="flowdapt-enabled" checked={state.enabled} onChange={e => set({ enabled: e.target.checked })} /> enabled
          </label>
          <h4>Parameters{inputs.fields.length ? '' : ' (the notebook has no parameters cell)'}</h4>
          <FormFields inputs={inputs} state={state} onChange={next => set(next)} />
        </div>
      );
    }, () => state, error);
    const result = await showDialog({ title: 'Schedule notebook', body, buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Schedule' })] });
    if (!result.button.accept) {
      return undefined;
    }
    const collected = collectInput(inputs, state.values, state.extra);
    if (!/^[A-Za-z0-9_-]+$/.test(state.name)) {
      error = 'trigger name: letters, digits, - and _ only';
    } else if (state.cron.trim().split(/\s+/).length < 5) {
      error = 'cron: five fields (minute hour day month weekday), or six with seconds last';
    } else if (collected.error) {
      error = collected.error;
    } else {
      const schedule = { name: state.name, cron: state.cron.trim(), timezone: state.timezone, enabled: state.enabled,
                         parameters: collected.input! };
      error = await submit(schedule);
      if (!error) {
        return schedule;
      }
    }
  }
}
