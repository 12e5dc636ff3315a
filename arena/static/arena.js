// The battle page: synchronised playback with one audible side (or A then B), per-side audible-time tracking,
// vote unlock after enough of both sides was heard, keyboard shortcuts, reveal.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const video = { a: $("video-a"), b: $("video-b") };
  const state = { battle: null, mode: "sync", audible: "a", heard: { a: 0, b: 0 }, last: { a: null, b: null },
                  playing: false, voted: false, busy: false };

  async function api(path, body) {
    const r = await fetch(path, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(body || {}) });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.detail || ("HTTP " + r.status));
    return data;
  }

  function setStatus(t) { $("status").textContent = t; }

  function unlocked() {
    const b = state.battle;
    return !!b && !state.voted && state.heard.a >= b.min_listen_s.a && state.heard.b >= b.min_listen_s.b;
  }

  function render() {
    for (const s of ["a", "b"]) {
      $("heard-" + s).textContent = state.heard[s].toFixed(1) + " s";
      const on = state.mode === "sync" ? state.audible === s : !video[s].paused;
      $("aud-" + s).textContent = on ? "🔊" : "🔇";
      $("side-" + s).classList.toggle("audible-now", on);
    }
    const open = unlocked();
    document.querySelectorAll("button.vote").forEach((btn) => { btn.disabled = !open || state.busy; });
    $("play").textContent = state.playing ? "⏸ Pause" : "▶ Play";
    $("mode").textContent = "Mode: " + (state.mode === "sync" ? "together" : "A then B");
    if (open && !state.announced) { state.announced = true; setStatus("You can vote now (A, B, T or X)."); }
  }

  function applyAudio() {
    if (state.mode === "sync") {
      video.a.muted = state.audible !== "a";
      video.b.muted = state.audible !== "b";
    } else {
      video.a.muted = false;
      video.b.muted = false;
    }
  }

  function track(s) {
    const v = video[s];
    const t = v.currentTime;
    const prev = state.last[s];
    state.last[s] = t;
    if (prev === null || v.paused || v.muted) return;
    const dt = t - prev;
    if (dt > 0 && dt < 1.0) state.heard[s] += dt;   // seeks and stalls do not count
  }

  for (const s of ["a", "b"]) {
    const v = video[s];
    v.addEventListener("timeupdate", () => {
      track(s);
      if (state.mode === "sync" && s === "a" && !video.b.paused && Math.abs(video.b.currentTime - v.currentTime) > 0.2) {
        video.b.currentTime = v.currentTime;   // keep the two clips together
        state.last.b = v.currentTime;
      }
      render();
    });
    v.addEventListener("seeking", () => { state.last[s] = null; });
    v.addEventListener("ended", () => {
      if (state.mode === "seq" && s === "a") { video.b.currentTime = 0; state.last.b = null; video.b.play(); return; }
      const aDone = video.a.ended || video.a.paused, bDone = video.b.ended || video.b.paused;
      if (!(aDone && bDone)) return;
      if (state.mode === "sync" && state.playing && !unlocked() && !state.voted) { replay(); return; }  // loop until enough was heard
      state.playing = false; render();
    });
  }
  // timeupdate fires only ~4 times a second; poll as well so the unlock is prompt.
  setInterval(() => { if (state.playing) { track("a"); track("b"); render(); } }, 100);

  function play() {
    if (!state.battle) return;
    applyAudio();
    state.playing = true;
    state.last = { a: null, b: null };
    if (state.mode === "sync") {
      for (const s of ["a", "b"]) if (video[s].ended) video[s].currentTime = 0;
      video.a.play(); video.b.play();
    } else if (!video.a.ended && video.a.currentTime < video.a.duration) {
      video.b.pause(); video.a.play();
    } else {
      video.b.play();
    }
    render();
  }

  function pause() { video.a.pause(); video.b.pause(); state.playing = false; render(); }
  function togglePlay() { state.playing ? pause() : play(); }

  function solo(s) {
    if (state.mode !== "sync") { state.mode = "sync"; }
    state.audible = s;
    applyAudio();
    render();
  }

  function toggleMode() {
    pause();
    state.mode = state.mode === "sync" ? "seq" : "sync";
    video.a.currentTime = 0; video.b.currentTime = 0;
    applyAudio();
    render();
  }

  function replay() {
    for (const s of ["a", "b"]) { video[s].currentTime = 0; state.last[s] = null; }
    play();
  }

  function tags(side) {
    return Array.from(document.querySelectorAll('input[name="tag-' + side + '"]:checked')).map((x) => x.value);
  }

  async function vote(choice) {
    if (!state.battle || state.voted || state.busy) return;
    if (!unlocked()) { setStatus("Voting opens after you have heard both sides (switch with 1 and 2)."); return; }
    state.busy = true; render();
    try {
      const r = await api("/api/votes", { token: state.battle.token, choice: choice,
        heard_a_s: Math.round(state.heard.a * 1000) / 1000, heard_b_s: Math.round(state.heard.b * 1000) / 1000,
        tags: { a: tags("a"), b: tags("b") } });
      state.voted = true;
      pause();
      $("name-a").textContent = r.a; $("name-b").textContent = r.b;
      $("reveal").hidden = false;
      setStatus("Thanks! Press N for the next battle.");
    } catch (e) {
      setStatus("Vote not recorded: " + e.message);
    } finally { state.busy = false; render(); }
  }

  async function next() {
    pause();
    state.battle = null; state.voted = false; state.announced = false;
    state.heard = { a: 0, b: 0 }; state.last = { a: null, b: null };
    $("reveal").hidden = true;
    document.querySelectorAll('.tags input').forEach((x) => { x.checked = false; });
    $("prompt").textContent = "Loading a battle…";
    try {
      const b = await api("/api/battles", {});
      state.battle = b;
      video.a.src = b.a.url; video.b.src = b.b.url;
      video.a.load(); video.b.load();
      $("prompt").textContent = b.prompt.text || "(no prompt text)";
      setStatus("Press Play (Space). Hear each side for at least " + Math.max(b.min_listen_s.a, b.min_listen_s.b) + " s.");
    } catch (e) {
      $("prompt").textContent = "No battle: " + e.message;
    }
    render();
  }

  $("play").addEventListener("click", togglePlay);
  $("solo-a").addEventListener("click", () => solo("a"));
  $("solo-b").addEventListener("click", () => solo("b"));
  $("mode").addEventListener("click", toggleMode);
  $("replay").addEventListener("click", replay);
  $("next").addEventListener("click", next);
  document.querySelectorAll("button.vote").forEach((btn) => btn.addEventListener("click", () => vote(btn.dataset.choice)));

  const keys = { " ": togglePlay, "1": () => solo("a"), "2": () => solo("b"), m: toggleMode, r: replay,
    a: () => vote("a"), ArrowLeft: () => vote("a"), b: () => vote("b"), ArrowRight: () => vote("b"),
    t: () => vote("tie"), ArrowDown: () => vote("tie"), x: () => vote("both_bad"), ArrowUp: () => vote("both_bad"),
    n: () => { if (state.voted) next(); } };
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.target && ev.target.tagName === "INPUT" && ev.key !== " ") return;
    const f = keys[ev.key.length === 1 ? ev.key.toLowerCase() : ev.key];
    if (f) { ev.preventDefault(); f(); }
  });
  window.arenaState = state;   // read by the browser tests
  next();
})();
