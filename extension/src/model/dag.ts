/**
 * The layout of a workflow's stage graph, by dagre (layered, left to right): node boxes and edge
 * paths in pixels, ready to draw as SVG. dagre is loaded with the first DAG view, not with Lab.
 */
import type { Workflow } from '../api';

export interface IDagNode {
  name: string;
  type: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface IDagEdge {
  from: string;
  to: string;
  points: { x: number; y: number }[];
}

export interface IDagLayout {
  nodes: IDagNode[];
  edges: IDagEdge[];
  width: number;
  height: number;
}

export const NODE_HEIGHT = 44;
const CHAR_WIDTH = 7.5;
const MIN_WIDTH = 110;

export async function layoutWorkflow(workflow: Workflow, direction: 'LR' | 'TB' = 'LR'): Promise<IDagLayout> {
  const { graphlib, layout } = await import('@dagrejs/dagre');
  const graph = new graphlib.Graph();
  graph.setGraph({ rankdir: direction, nodesep: 24, ranksep: 56, marginx: 16, marginy: 16 });
  graph.setDefaultEdgeLabel(() => ({}));
  for (const stage of workflow.spec.stages) {
    const width = Math.max(MIN_WIDTH, 36 + CHAR_WIDTH * stage.name.length);
    graph.setNode(stage.name, { width, height: NODE_HEIGHT });
  }
  for (const stage of workflow.spec.stages) {
    for (const dependency of stage.depends_on ?? []) {
      graph.setEdge(dependency, stage.name);
    }
  }
  layout(graph);
  const types = new Map(workflow.spec.stages.map(stage => [stage.name, stage.type ?? 'simple']));
  const nodes = graph.nodes().map(name => {
    const node = graph.node(name);
    return { name, type: types.get(name) ?? 'simple', x: node.x - node.width / 2, y: node.y - node.height / 2,
             width: node.width, height: node.height };
  });
  const edges = graph.edges().map(edge => ({ from: edge.v, to: edge.w, points: graph.edge(edge).points ?? [] }));
  const label = graph.graph();
  return { nodes, edges, width: label.width ?? 0, height: label.height ?? 0 };
}
