// Classes: fields, private members, static blocks, accessors, inheritance, super calls,
// computed names and class expressions.
const symbol = Symbol("tag");
class Shape {
  static #count = 0;
  static registry = new Map();
  static { Shape.kind = "shape"; }
  #id;
  name = "shape";
  [symbol] = true;
  constructor(id) { this.#id = id; Shape.#count++; Shape.registry.set(id, this); }
  get id() { return this.#id; }
  set id(value) { throw new TypeError(`id is read-only: ${value}`); }
  #describe() { return `${this.name}#${this.#id}`; }
  describe() { return this.#describe(); }
  static count() { return Shape.#count; }
  static isShape(value) { return #id in value; }
  area() { return 0; }
  toString() { return `${this.describe()} area=${this.area()}`; }
}
class Circle extends Shape {
  radius;
  constructor(id, radius) { super(id); this.radius = radius; this.name = "circle"; }
  area() { return Math.PI * this.radius ** 2; }
  get diameter() { return this.radius * 2; }
  static from({ id, radius }) { return new this(id, radius); }
}
class Square extends Shape {
  constructor(id, side) { super(id); Object.assign(this, { side, name: "square" }); }
  area() { return this.side ** 2; }
  describe() { return `[${super.describe()}]`; }
}
const Mixin = (Base) => class extends Base { mixed() { return `mixed ${super.toString()}`; } };
const Anonymous = class { static create() { return new this(); } };
class Mixed extends Mixin(Square) {}
const shapes = [new Circle(1, 2), Circle.from({ id: 2, radius: 1 }), new Square(3, 4), new Mixed(4, 5)];
let thrown;
try { shapes[0].id = 5; } catch (error) { thrown = error.message; }
[shapes.map(String), Shape.count(), Shape.isShape(shapes[0]), Shape.isShape({}), shapes[3].mixed(), thrown, Anonymous.create(), Shape.kind, shapes[0][symbol]];
