import { describe, expect, it } from 'vitest';

import type { WorkflowInputs } from '../src/api';
import { collectInput, extraText, initialValues, widgetOf } from '../src/model/form';

const inputs: WorkflowInputs = {
  workflow: 'train',
  open: true,
  fields: [
    { name: 'name', type: 'string', annotation: 'str', required: true, default: null, enum: null, description: '', stages: ['a'] },
    { name: 'epochs', type: 'integer', annotation: 'int', required: false, default: 3, enum: null, description: '', stages: ['a'] },
    { name: 'rate', type: 'number', annotation: 'float', required: false, default: 0.1, enum: null, description: '', stages: ['a'] },
    { name: 'fast', type: 'boolean', annotation: 'bool', required: false, default: false, enum: null, description: '', stages: ['a'] },
    { name: 'mode', type: 'string', annotation: "Literal['a', 'b']", required: false, default: 'a', enum: ['a', 'b'], description: '', stages: ['a'] },
    { name: 'items', type: 'array', annotation: null, required: true, default: null, enum: null, description: '', stages: ['m'] },
    { name: 'model', type: null, annotation: 'Model', required: false, default: null, enum: null, description: '', stages: ['a'] }
  ]
};

describe('the run form', () => {
  it('edits each field with the widget its type asks for', () => {
    expect(inputs.fields.map(widgetOf)).toEqual(['text', 'number', 'number', 'checkbox', 'select', 'json', 'json']);
  });

  it('opens with the defaults, or the previous input when running again', () => {
    expect(initialValues(inputs)).toEqual({ name: '', epochs: '3', rate: '0.1', fast: false, mode: '"a"', items: '', model: '' });
    const previous = { name: 'ada', items: [1, 2], fast: true, seed: 7 };
    expect(initialValues(inputs, previous)).toMatchObject({ name: 'ada', items: '[1,2]', fast: true });
    expect(JSON.parse(extraText(inputs, previous))).toEqual({ seed: 7 });
  });

  it('collects typed values and leaves empty optional fields to their defaults', () => {
    const values = { ...initialValues(inputs), name: 'ada', epochs: '5', items: '[1, 2, 3]', mode: '"b"', rate: '' };
    expect(collectInput(inputs, values, '{"seed": 7}')).toEqual({
      input: { seed: 7, name: 'ada', epochs: 5, fast: false, mode: 'b', items: [1, 2, 3] }
    });
  });

  it.each([
    [{ name: '' }, 'name: required'],
    [{ epochs: '2.5' }, "epochs: expected a whole number, got '2.5'"],
    [{ rate: 'fast' }, "rate: expected a number, got 'fast'"],
    [{ items: '{"a": 1}' }, 'items: expected a JSON array such as [1, 2], got object'],
    [{ model: '{oops' }, "model: expected JSON, got '{oops'"]
  ])('names the first wrong field: %o', (changed, error) => {
    const values = { ...initialValues(inputs), name: 'ada', items: '[1]', ...changed };
    expect(collectInput(inputs, values)).toEqual({ error });
  });

  it('refuses more input that is not an object or repeats a field', () => {
    const values = { ...initialValues(inputs), name: 'ada', items: '[1]' };
    expect(collectInput(inputs, values, '[1]').error).toMatch(/^more input: expected a JSON object/);
    expect(collectInput(inputs, values, '{"name": "bob"}').error).toBe('name: given both in its field and in more input');
    expect(collectInput(inputs, { ...values, items: '' }, '{"items": [4]}')).toMatchObject({ input: { items: [4] } });
  });
});
