// Computes digits of pi with a spigot algorithm (Rabinowitz and Wagon): pure CPU work.
function piDigits(count) {
  const len = Math.floor((10 * count) / 3) + 1;
  const a = new Array(len).fill(2);
  let digits = "";
  let nines = 0;
  let predigit = 0;
  for (let j = 1; j <= count; j++) {
    let q = 0;
    for (let i = len; i > 0; i--) {
      const x = 10 * a[i - 1] + q * i;
      a[i - 1] = x % (2 * i - 1);
      q = Math.floor(x / (2 * i - 1));
    }
    a[0] = q % 10;
    q = Math.floor(q / 10);
    if (q === 9) {
      nines++;
    } else if (q === 10) {
      digits += String(predigit + 1) + "0".repeat(nines);
      predigit = 0;
      nines = 0;
    } else {
      if (j > 1) digits += String(predigit);
      predigit = q;
      if (nines !== 0) {
        digits += "9".repeat(nines);
        nines = 0;
      }
    }
  }
  digits += String(predigit);
  return digits[0] + "." + digits.slice(1);
}

piDigits(1000);
