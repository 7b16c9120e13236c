// The TypeScript examples of the picker. They live on the page, not in example-scripts/: the
// sandbox bundles and lists JavaScript files only (GET /api/examples), so these are sent as `code`
// with `"language": "typescript"`, and a share link or curl command carries them the same way.

/** `[{ name, source }]`, in the order the picker lists them. */
export const TYPESCRIPT_EXAMPLES = [
  {
    name: "types.ts",
    source: `// Types are stripped, not checked: interfaces, type aliases and annotations are blanked out
// and the JavaScript underneath runs, so errors point at these very lines.
interface Item {
  name: string;
  price: number;
  qty: number;
}

type Summary = { total: number; items: number };

const items: Item[] = [
  { name: "pen", price: 1.5, qty: 4 },
  { name: "pad", price: 3, qty: 2 },
];

function summarise(list: readonly Item[]): Summary {
  const total = list.reduce((sum: number, item) => sum + item.price * item.qty, 0);
  return { total, items: list.length };
}

console.log("items:", items.map((item) => item.name));
summarise(items) satisfies Summary;
`,
  },
  {
    name: "generics.ts",
    source: `// Generics, member modifiers, \`as const\` and non-null assertions are erased too.
// (enum, namespaces with values and parameter properties need code generation: refused.)
class Stack<T> {
  private readonly items: T[] = [];

  push(item: T): this {
    this.items.push(item);
    return this;
  }

  peek(): T | undefined {
    return this.items[this.items.length - 1];
  }

  get size(): number {
    return this.items.length;
  }
}

const colours = ["red", "green", "blue"] as const;
type Colour = (typeof colours)[number];

const stack = new Stack<Colour>();
for (const colour of colours) stack.push(colour);

const top = stack.peek()!;
console.log(\`top of \${stack.size}:\`, top);
({ top, size: stack.size });
`,
  },
];
