/**
 * A list that renders only the rows in view (fixed row height), so ten thousand runs scroll as
 * smoothly as ten. Calls `onEndReached` when the last rows come into view (to load older pages).
 */
import * as React from 'react';

export interface IVirtualListProps<T> {
  items: readonly T[];
  rowHeight: number;
  renderRow: (item: T, index: number) => React.ReactNode;
  keyOf: (item: T) => string;
  onEndReached?: () => void;
  /** Rows rendered beyond each edge of the view. */
  overscan?: number;
  className?: string;
  empty?: React.ReactNode;
}

export function VirtualList<T>(props: IVirtualListProps<T>): JSX.Element {
  const { items, rowHeight, renderRow, keyOf, onEndReached, overscan = 8 } = props;
  const container = React.useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = React.useState(0);
  const [height, setHeight] = React.useState(400);

  React.useEffect(() => {
    const node = container.current;
    if (!node) {
      return;
    }
    const observer = new ResizeObserver(() => setHeight(node.clientHeight));
    observer.observe(node);
    setHeight(node.clientHeight);
    return () => observer.disconnect();
  }, []);

  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(items.length, Math.ceil((scrollTop + height) / rowHeight) + overscan);

  React.useEffect(() => {
    if (onEndReached && items.length && last >= items.length - overscan) {
      onEndReached();
    }
  }, [last, items.length]);

  const rows = [];
  for (let index = first; index < last; index++) {
    const item = items[index];
    rows.push(
      <div key={keyOf(item)} className="jp-flowdapt-vrow" style={{ top: index * rowHeight, height: rowHeight }}>
        {renderRow(item, index)}
      </div>
    );
  }
  return (
    <div
      ref={container}
      className={`jp-flowdapt-vlist ${props.className ?? ''}`}
      onScroll={event => setScrollTop((event.target as HTMLDivElement).scrollTop)}
    >
      {items.length === 0 && props.empty}
      <div className="jp-flowdapt-vlist-spacer" style={{ height: items.length * rowHeight }}>
        {rows}
      </div>
    </div>
  );
}
