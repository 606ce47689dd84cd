/**
 * The Run form: one field per input a workflow's root stages take (`GET workflows/{id}/inputs`),
 * typed by their annotations, with a JSON editor for the rest. Values are kept as the text the user
 * typed; {@link collectInput} turns them into the run input or names the first field that is wrong.
 */
import type { InputField, WorkflowInputs } from '../api';

export type FieldValue = string | boolean;

/** How a field is edited. */
export type FieldWidget = 'checkbox' | 'select' | 'number' | 'text' | 'json';

export function widgetOf(field: InputField): FieldWidget {
  if (field.enum && field.enum.length) {
    return 'select';
  }
  switch (field.type) {
    case 'boolean':
      return 'checkbox';
    case 'integer':
    case 'number':
      return 'number';
    case 'string':
      return 'text';
    default:
      return 'json';
  }
}

/** The values the form opens with: `previous` input (Run again), else the defaults. */
export function initialValues(inputs: WorkflowInputs, previous: Record<string, unknown> = {}): Record<string, FieldValue> {
  const values: Record<string, FieldValue> = {};
  for (const field of inputs.fields ?? []) {
    const value = field.name in previous ? previous[field.name] : field.default;
    values[field.name] = display(field, value);
  }
  return values;
}

/** The JSON editor's text for input keys that have no field. */
export function extraText(inputs: WorkflowInputs, previous: Record<string, unknown> = {}): string {
  const names = new Set((inputs.fields ?? []).map(field => field.name));
  const extra = Object.fromEntries(Object.entries(previous).filter(([key]) => !names.has(key)));
  return Object.keys(extra).length ? JSON.stringify(extra, null, 2) : '';
}

function display(field: InputField, value: unknown): FieldValue {
  const widget = widgetOf(field);
  if (widget === 'checkbox') {
    return value === true;
  }
  if (value === undefined || value === null) {
    return '';
  }
  if (widget === 'select' || widget === 'json') {
    return JSON.stringify(value);
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export type Collected = { input: Record<string, unknown>; error?: undefined } | { error: string; input?: undefined };

/** The run input from the form, or a one-line error naming the field. */
export function collectInput(inputs: WorkflowInputs, values: Record<string, FieldValue>, extra = ''): Collected {
  const input: Record<string, unknown> = {};
  if (extra.trim()) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(extra);
    } catch (error) {
      return { error: `more input: not JSON (${(error as Error).message})` };
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return { error: 'more input: expected a JSON object such as {"key": "value"}' };
    }
    Object.assign(input, parsed);
  }
  for (const field of inputs.fields ?? []) {
    const value = values[field.name];
    const converted = convert(field, value);
    if ('error' in converted) {
      return { error: `${field.name}: ${converted.error}` };
    }
    if (!converted.present) {
      if (field.required && !(field.name in input)) {
        return { error: `${field.name}: required` };
      }
      continue;
    }
    if (field.name in input) {
      return { error: `${field.name}: given both in its field and in more input` };
    }
    input[field.name] = converted.value;
  }
  return { input };
}

type Converted = { present: false } | { present: true; value: unknown } | { error: string };

function convert(field: InputField, value: FieldValue | undefined): Converted {
  const widget = widgetOf(field);
  if (widget === 'checkbox') {
    return { present: true, value: value === true };
  }
  const text = typeof value === 'string' ? value.trim() : '';
  if (!text) {
    return { present: false };
  }
  switch (widget) {
    case 'select':
      return { present: true, value: JSON.parse(text) };
    case 'number': {
      const number = Number(text);
      if (!Number.isFinite(number)) {
        return { error: `expected a number, got '${text}'` };
      }
      if (field.type === 'integer' && !Number.isInteger(number)) {
        return { error: `expected a whole number, got '${text}'` };
      }
      return { present: true, value: number };
    }
    case 'text':
      return { present: true, value: typeof value === 'string' ? value : '' };
    default: {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return { error: `expected JSON${field.type ? ` (${field.type})` : ''}, got '${text}'` };
      }
      const kind = Array.isArray(parsed) ? 'array' : parsed === null ? 'null' : typeof parsed;
      if (field.type === 'array' && kind !== 'array') {
        return { error: `expected a JSON array such as [1, 2], got ${kind}` };
      }
      if (field.type === 'object' && kind !== 'object') {
        return { error: `expected a JSON object such as {"a": 1}, got ${kind}` };
      }
      return { present: true, value: parsed };
    }
  }
}
