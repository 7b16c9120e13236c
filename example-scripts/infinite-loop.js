// Runs forever: the service stops it at the deadline and reports a timeout.
let spins = 0;
while (true) {
  spins++;
}
