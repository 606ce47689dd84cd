import { describe, expect, it } from 'vitest';

import type { Workflow } from '../src/api';
import { layoutWorkflow } from '../src/model/dag';

function workflow(stages: { name: string; depends_on?: string[]; type?: string }[]): Workflow {
  return { kind: 'workflow', metadata: { name: 'w' }, spec: { stages: stages.map(s => ({ target: 'm.f', ...s })) } } as unknown as Workflow;
}

describe('the DAG layout', () => {
  it('places every stage after the stages it depends on, edges between them', async () => {
    const layout = await layoutWorkflow(workflow([
      { name: 'load' }, { name: 'clean', depends_on: ['load'] }, { name: 'train', depends_on: ['clean'], type: 'parameterized' },
      { name: 'report', depends_on: ['load', 'train'] }
    ]));
    const x = Object.fromEntries(layout.nodes.map(node => [node.name, node.x]));
    expect(x.load).toBeLessThan(x.clean);
    expect(x.clean).toBeLessThan(x.train);
    expect(x.train).toBeLessThan(x.report);
    expect(layout.nodes.find(node => node.name === 'train')!.type).toBe('parameterized');
    expect(layout.edges.map(edge => `${edge.from}>${edge.to}`).sort()).toEqual(['clean>train', 'load>clean', 'load>report', 'train>report']);
    for (const edge of layout.edges) {
      expect(edge.points.length).toBeGreaterThanOrEqual(2);
    }
    for (const node of layout.nodes) {
      expect(node.x + node.width).toBeLessThanOrEqual(layout.width);
      expect(node.y + node.height).toBeLessThanOrEqual(layout.height);
    }
  });

  it('keeps independent stages apart', async () => {
    const layout = await layoutWorkflow(workflow([{ name: 'a' }, { name: 'b' }, { name: 'c' }]));
    const boxes = layout.nodes;
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const apart = boxes[i].y + boxes[i].height <= boxes[j].y || boxes[j].y + boxes[j].height <= boxes[i].y ||
          boxes[i].x + boxes[i].width <= boxes[j].x || boxes[j].x + boxes[j].width <= boxes[i].x;
        expect(apart).toBe(true);
      }
    }
  });
});
