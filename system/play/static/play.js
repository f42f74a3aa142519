// The play page: one WebSocket to the server, frames drawn into a canvas scaled with nearest-neighbour, keys
// and mouse sent as they happen. The protocol is described in system/play/connection.py.
"use strict";

const $ = (id) => document.getElementById(id);
const screen = $("screen");
const context2d = screen.getContext("2d");
context2d.imageSmoothingEnabled = false;   // nearest-neighbour scaling of the 64x64 frames

// What the browser test reads: frames drawn so far and the last frame's header.
window.playStats = { frames: 0, generated: 0, header: null, errors: [] };

let hello = null;
let boundCodes = new Set();
let paused = false;
let imageType = "image/png";
const arrivals = [];          // arrival times of generated frames over the last second
let mouseDx = 0, mouseDy = 0, mouseQueued = false;

const token = new URLSearchParams(location.search).get("token");
const socketUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" +
  (token ? "?token=" + encodeURIComponent(token) : "");
const socket = new WebSocket(socketUrl);
socket.binaryType = "arraybuffer";

function send(message) {
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

let statusTimer = null;
function status(text, isError) {
  const line = $("status");
  line.textContent = text;
  line.classList.toggle("error", Boolean(isError));
  clearTimeout(statusTimer);
  if (isError) statusTimer = setTimeout(() => { line.textContent = ""; line.classList.remove("error"); }, 6000);
}

function onHello(message) {
  hello = message;
  imageType = message.image_format === "jpeg" ? "image/jpeg" : "image/png";
  $("world").textContent = `${message.env} · action space ${message.action_space} · slot ${message.slot}`;
  const choice = $("start-choice");
  choice.replaceChildren(...message.starts.map((start) => new Option(start.label, start.id)));
  const k = $("k");
  k.max = String(message.k_choices.length - 1);
  k.value = String(message.k_choices.indexOf(message.k));
  $("k-value").textContent = String(message.k);
  const cap = $("max-fps");
  if (![...cap.options].some((option) => Number(option.value) === message.max_fps)) {
    cap.add(new Option(`${message.max_fps} frames/s`, String(message.max_fps)));   // the server's --max-fps
  }
  cap.value = [...cap.options].find((option) => Number(option.value) === message.max_fps).value;
  const rows = message.legend.map((entry) => {
    const row = document.createElement("tr");
    row.append(Object.assign(document.createElement("td"), { textContent: entry.keys }),
               Object.assign(document.createElement("td"), { textContent: entry.action }));
    return row;
  });
  $("legend").tBodies[0].replaceChildren(...rows);
  boundCodes = new Set(message.legend.flatMap((entry) => entry.codes));
  startWorld();
}

function startWorld() {
  status("starting " + $("start-choice").selectedOptions[0].textContent + " …");
  send({ type: "start", start: $("start-choice").value });
}

async function onFrame(buffer) {
  const view = new DataView(buffer);
  const length = view.getUint32(0);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const image = await createImageBitmap(new Blob([new Uint8Array(buffer, 4 + length)], { type: imageType }));
  context2d.drawImage(image, 0, 0, screen.width, screen.height);
  image.close();
  window.playStats.frames += 1;
  window.playStats.header = header;
  $("frame-index").textContent = `frame ${header.frame}` + (header.context ? " (real context)" : "");
  if (header.context) return;
  window.playStats.generated += 1;
  const now = performance.now();
  arrivals.push(now);
  while (arrivals.length && arrivals[0] < now - 1000) arrivals.shift();
  $("model-ms").textContent = `model ${header.ms.toFixed(1)} ms/frame at K=${header.k}`;
}

// frames/s over the last second, refreshed even when frames stop arriving
setInterval(() => {
  const now = performance.now();
  while (arrivals.length && arrivals[0] < now - 1000) arrivals.shift();
  $("fps").textContent = `${arrivals.length.toFixed(1)} frames/s`;
}, 250);

socket.addEventListener("message", (event) => {
  if (typeof event.data !== "string") { onFrame(event.data); return; }
  const message = JSON.parse(event.data);
  if (message.type === "hello") onHello(message);
  else if (message.type === "started") status(`playing ${message.label}, seed ${message.seed}, from ` +
                                              `${message.context_frames} real frames`);
  else if (message.type === "state") {
    paused = message.paused;
    $("pause").textContent = paused ? "Resume" : "Pause";
    $("step").disabled = !paused;
  } else if (message.type === "error") {
    window.playStats.errors.push(message.message);
    status(message.message, true);
  }
});
socket.addEventListener("close", () => status("disconnected from the play server: reload the page", true));

// -- controls -------------------------------------------------------------------------------------------
function button(id, action) {
  $(id).addEventListener("click", () => { action(); $(id).blur(); screen.focus(); });
}
button("start", startWorld);
button("reset", () => send({ type: "reset" }));
button("pause", () => send({ type: paused ? "resume" : "pause" }));
button("step", () => send({ type: "step" }));
$("k").addEventListener("input", () => {
  const k = hello.k_choices[Number($("k").value)];
  $("k-value").textContent = String(k);
  send({ type: "k", k });
});
$("max-fps").addEventListener("change", () => send({ type: "max_fps", fps: Number($("max-fps").value) }));

// A focused select takes letters and arrows for its options; everywhere else the bound keys steer the world.
function choosingAnOption(event) {
  return event.target.tagName === "SELECT";
}
for (const id of ["start-choice", "max-fps", "k"]) {
  $(id).addEventListener("change", () => { $(id).blur(); screen.focus(); });
}
document.addEventListener("keydown", (event) => {
  if (choosingAnOption(event) || !boundCodes.has(event.code)) return;
  event.preventDefault();
  if (!event.repeat) send({ type: "key", code: event.code, down: true });
});
document.addEventListener("keyup", (event) => {
  if (choosingAnOption(event) || !boundCodes.has(event.code)) return;
  event.preventDefault();
  send({ type: "key", code: event.code, down: false });
});
window.addEventListener("blur", () => send({ type: "release" }));

// Minecraft: click the frame to capture the mouse; movement and buttons steer the camera, attack and use.
screen.addEventListener("click", () => {
  if (hello && hello.mouse_look && document.pointerLockElement !== screen) screen.requestPointerLock();
});
screen.addEventListener("contextmenu", (event) => event.preventDefault());
for (const [type, down] of [["mousedown", true], ["mouseup", false]]) {
  screen.addEventListener(type, (event) => {
    const code = "Mouse" + event.button;
    if (boundCodes.has(code) && document.pointerLockElement === screen) send({ type: "key", code, down });
  });
}
document.addEventListener("mousemove", (event) => {
  if (document.pointerLockElement !== screen) return;
  mouseDx += event.movementX;
  mouseDy += event.movementY;
  if (!mouseQueued) {   // at most one mouse message per animation frame
    mouseQueued = true;
    requestAnimationFrame(() => {
      send({ type: "mouse", dx: mouseDx, dy: mouseDy });
      mouseDx = mouseDy = 0;
      mouseQueued = false;
    });
  }
});
