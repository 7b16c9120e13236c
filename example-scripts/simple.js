// The value of the last expression is the result.
const a = 1;
const b = 2;
a + b;
