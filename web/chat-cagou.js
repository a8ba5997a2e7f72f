/*
 * Chat Cagou: the website chat widget, on Rasa's socketio channel.
 *
 * Embed with one tag (docs/channels.md):
 *   <script src="https://CHAT-HOST/chat-cagou.js" data-server="https://RASA-HOST" defer></script>
 * It loads chat-cagou.css and vendor/socket.io.min.js (npm socket.io-client) from beside
 * itself, unless the page already provides window.io.
 *
 * Safety: every text (bot's, user's, button titles) goes into the page through textContent
 * and text nodes, never as HTML; links are built only from URLs, e-mail addresses and phone
 * numbers found in that text, with http(s), mailto and tel schemes.
 * Session: the session id (issued and signed by the server: sent back as it was received)
 * and the messages shown are kept in sessionStorage, so a reload
 * in the same tab shows the history and Rasa continues the same conversation.
 */
(function () {
  "use strict";

  if (window.ChatCagou) return; // the snippet included twice

  var script = document.currentScript;
  var base = new URL(".", script ? script.src : location.href).href;
  var data = (script && script.dataset) || {};
  var config = {
    server: data.server || location.origin,
    socketPath: data.socketPath || "/socket.io/",
    title: data.title || "Chat Cagou",
    subtitle: data.subtitle || "Service client Mobilis Pro",
    open: data.open === "true",
    storageKey: data.storageKey || "chat-cagou",
  };

  var TEXT = {
    launcher: "Discuter avec " + config.title,
    close: "Réduire la discussion",
    reset: "Nouvelle conversation",
    placeholder: "Écrivez votre message…",
    send: "Envoyer",
    inputLabel: "Votre message",
    connecting: "Connexion en cours…",
    online: "En ligne",
    offline: "Connexion perdue, nouvelle tentative…",
    typing: config.title + " écrit…",
    you: "Vous",
  };
  var MAX_HISTORY = 200;
  var TYPING_TIMEOUT_MS = 20000;

  // --- storage (sessionStorage: this tab only; in memory if the browser refuses it) -----

  var memory = {};
  function load(key, fallback) {
    try {
      var raw = window.sessionStorage.getItem(config.storageKey + ":" + key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch (e) {
      return key in memory ? memory[key] : fallback;
    }
  }
  function save(key, value) {
    memory[key] = value;
    try {
      window.sessionStorage.setItem(config.storageKey + ":" + key, JSON.stringify(value));
    } catch (e) { /* private mode, quota: memory only */ }
  }

  var state = {
    sessionId: load("session", null),
    history: load("history", []),
    open: load("open", config.open),
    greeted: load("greeted", false),
    confirmed: false,
    socket: null,
  };

  // --- DOM helpers ------------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // URLs, e-mail addresses, phone numbers (+687 26 87 70, 26 87 70, "au 1000"), bare .nc
  // domains. No lookbehind: older Safari would reject the whole script.
  var LINK = new RegExp(
    [
      "(https?:\\/\\/[^\\s<>\"']+)",
      "([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,})",
      "(www\\.[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+(?:\\/[^\\s<>\"']*)?)",
      "(\\+\\d{1,3}(?: ?\\d{2}){3,6})",
      "(\\b\\d{2} \\d{2} \\d{2}\\b)",
      "(\\b(?:au|le|du|composez|appelez) )(10\\d{2})\\b",
      "(\\b[a-z0-9-]+\\.nc\\b)",
    ].join("|"),
    "g"
  );
  var TRAILING = /[.,;:!?)\]»]+$/;

  // [offset in the match, linked text, href maker] of one match.
  var asIs = function (t) { return t; };
  var web = function (t) { return "https://" + t; };
  var mail = function (t) { return "mailto:" + t; };
  var tel = function (t) { return "tel:" + t.replace(/[^\d+]/g, ""); };
  function linkOf(m) {
    if (m[1]) return [0, m[1], asIs];
    if (m[2]) return [0, m[2], mail];
    if (m[3]) return [0, m[3], web];
    if (m[4] || m[5]) return [0, m[0], tel];
    if (m[7]) return [m[6].length, m[7], tel];
    return [0, m[8], web];
  }

  // Appends `text` to `parent` as text nodes, with the links found in it as <a>.
  function appendText(parent, text) {
    text = String(text === undefined || text === null ? "" : text);
    var last = 0;
    var match;
    LINK.lastIndex = 0;
    while ((match = LINK.exec(text)) !== null) {
      var found = linkOf(match);
      var start = match.index + found[0];
      var shown = found[1];
      var trailing = (shown.match(TRAILING) || [""])[0];
      shown = shown.slice(0, shown.length - trailing.length);
      var href = found[2](shown);
      if (!shown || !/^(https?:|mailto:|tel:)/i.test(href)) continue;
      parent.appendChild(document.createTextNode(text.slice(last, start)));
      var link = el("a", "cc-link", shown);
      link.href = href;
      if (/^https?:/i.test(href)) {
        link.target = "_blank";
        link.rel = "noopener noreferrer";
      }
      parent.appendChild(link);
      last = start + shown.length;
    }
    parent.appendChild(document.createTextNode(text.slice(last)));
  }

  // --- widget -----------------------------------------------------------------------------

  var root = el("div", "cc-root");
  root.id = "chat-cagou";
  var launcher = el("button", "cc-launcher", TEXT.launcher);
  launcher.type = "button";
  launcher.setAttribute("aria-expanded", "false");

  var panel = el("section", "cc-panel");
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", config.title);
  panel.hidden = true;

  var header = el("header", "cc-header");
  var heading = el("div", "cc-heading");
  heading.appendChild(el("h2", "cc-title", config.title));
  var status = el("p", "cc-status", TEXT.connecting);
  status.setAttribute("aria-live", "polite");
  heading.appendChild(status);
  var resetButton = el("button", "cc-icon cc-reset", "↺");
  resetButton.type = "button";
  resetButton.title = TEXT.reset;
  resetButton.setAttribute("aria-label", TEXT.reset);
  var closeButton = el("button", "cc-icon cc-close", "×");
  closeButton.type = "button";
  closeButton.title = TEXT.close;
  closeButton.setAttribute("aria-label", TEXT.close);
  header.appendChild(heading);
  header.appendChild(resetButton);
  header.appendChild(closeButton);

  var log = el("div", "cc-log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  var typing = el("p", "cc-typing", TEXT.typing);
  typing.hidden = true;

  var form = el("form", "cc-form");
  var input = el("input", "cc-input");
  input.type = "text";
  input.placeholder = TEXT.placeholder;
  input.setAttribute("aria-label", TEXT.inputLabel);
  input.maxLength = 1000;
  input.autocomplete = "off";
  var sendButton = el("button", "cc-send", TEXT.send);
  sendButton.type = "submit";
  form.appendChild(input);
  form.appendChild(sendButton);

  panel.appendChild(header);
  panel.appendChild(log);
  panel.appendChild(typing);
  panel.appendChild(form);
  root.appendChild(launcher);
  root.appendChild(panel);

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function setOpen(open) {
    state.open = open;
    save("open", open);
    panel.hidden = !open;
    launcher.hidden = open;
    launcher.setAttribute("aria-expanded", String(open));
    if (open) {
      scrollDown();
      input.focus();
      greetIfNew();
    }
  }

  // A new conversation, open: ask the assistant for its first message (what it does, the
  // privacy notice, suggestions). It comes from Rasa, so it is in the transcript; the
  // payload itself is not shown.
  var START_PAYLOAD = "/demarrer";
  function greetIfNew() {
    if (!state.open || !state.confirmed || state.greeted || state.history.length) return;
    state.greeted = true;
    save("greeted", true);
    state.socket.emit("user_uttered", { message: START_PAYLOAD, session_id: state.sessionId });
    showTyping(true);
  }

  function setStatus(text, online) {
    status.textContent = text;
    root.classList.toggle("cc-online", !!online);
    sendButton.disabled = !online;
  }

  // One message of the history: {from: "user"|"bot"|"agent", text, buttons: [{title, payload}],
  // used, agent (a staff member's first name), notice ("joined"/"left": shown as a notice)}.
  function renderMessage(entry, index) {
    if (entry.notice) {
      var notice = el("p", "cc-notice", entry.text);
      notice.setAttribute("role", "status");
      log.appendChild(notice);
      scrollDown();
      return;
    }
    var kind = entry.from === "user" ? "user" : entry.from === "agent" ? "agent" : "bot";
    var row = el("div", "cc-message cc-" + kind);
    if (kind === "agent") row.appendChild(el("span", "cc-author", entry.agent + " (conseiller)"));
    var bubble = el("div", "cc-bubble");
    appendText(bubble, entry.text);
    row.appendChild(bubble);
    if (entry.buttons && entry.buttons.length) {
      var group = el("div", "cc-buttons");
      entry.buttons.forEach(function (button) {
        var b = el("button", "cc-button", String(button.title || ""));
        b.type = "button";
        b.disabled = !!entry.used;
        if (entry.used && entry.used === button.payload) b.classList.add("cc-chosen");
        b.addEventListener("click", function () {
          if (entry.used || !state.confirmed) return;
          entry.used = String(button.payload || button.title || "");
          state.history[index] = entry;
          save("history", state.history);
          Array.prototype.forEach.call(group.children, function (other) { other.disabled = true; });
          b.classList.add("cc-chosen");
          send(entry.used, String(button.title || ""));
        });
        group.appendChild(b);
      });
      row.appendChild(group);
    }
    log.appendChild(row);
    scrollDown();
  }

  function addMessage(entry) {
    state.history.push(entry);
    if (state.history.length > MAX_HISTORY) {
      state.history = state.history.slice(-MAX_HISTORY);
      log.textContent = "";
      state.history.forEach(renderMessage);
    } else {
      renderMessage(entry, state.history.length - 1);
    }
    save("history", state.history);
  }

  var typingTimer = null;
  function showTyping(show) {
    typing.hidden = !show;
    clearTimeout(typingTimer);
    // Rasa may answer nothing: the indicator must not stay forever.
    if (show) typingTimer = setTimeout(function () { typing.hidden = true; }, TYPING_TIMEOUT_MS);
    scrollDown();
  }

  // `payload` goes to Rasa; `shown` (a button's title) is what the conversation shows.
  function send(payload, shown) {
    payload = String(payload || "").trim();
    if (!payload || !state.confirmed) return false;
    addMessage({ from: "user", text: shown || payload });
    state.socket.emit("user_uttered", { message: payload, session_id: state.sessionId });
    if (!withPerson()) showTyping(true); // a person answers when they can: no "écrit…"
    return true;
  }

  // A staff member has joined and not left (the notices in the history).
  function withPerson() {
    for (var i = state.history.length - 1; i >= 0; i--) {
      if (state.history[i].notice === "left") return false;
      if (state.history[i].notice === "joined") return true;
    }
    return false;
  }

  function onBotMessage(message) {
    if (!message || typeof message !== "object") return;
    showTyping(false);
    var text = typeof message.text === "string" ? message.text : "";
    var attachment = message.attachment;
    if (!text && attachment && attachment.payload && typeof attachment.payload.src === "string") {
      text = attachment.payload.src; // an image: shown as its link
    }
    var buttons = (message.quick_replies || message.buttons || [])
      .filter(function (b) { return b && (b.title || b.payload); })
      .map(function (b) { return { title: String(b.title || b.payload), payload: String(b.payload || b.title) }; });
    if (!text && !buttons.length) return;
    if (typeof message.agent === "string" && message.agent) {
      // a staff member from the console's live desk
      var notice = message.notice === "joined" || message.notice === "left" ? message.notice : null;
      addMessage({ from: "agent", agent: message.agent.slice(0, 40), text: text, notice: notice });
      return;
    }
    addMessage({ from: "bot", text: text, buttons: buttons });
  }

  function connect() {
    var socket = window.io(config.server, {
      path: config.socketPath,
      // Rasa 3.6's Sanic cannot receive WebSocket frames on Python 3.11 (channels/socketio.py).
      transports: ["polling"],
      withCredentials: false,
    });
    state.socket = socket;
    socket.on("connect", function () {
      state.confirmed = false;
      setStatus(TEXT.connecting, false);
      // Rasa puts this socket in the room of the session id: replies go there.
      socket.emit("session_request", { session_id: state.sessionId });
    });
    socket.on("session_confirm", function (confirmed) {
      var id = typeof confirmed === "string" ? confirmed : confirmed && confirmed.session_id;
      if (!id) return;
      if (state.sessionId && id !== state.sessionId) {
        // The server refused our id: a new conversation, so the old history goes.
        state.history = [];
        save("history", []);
        log.textContent = "";
        state.greeted = false;
        save("greeted", false);
      }
      state.sessionId = id;
      save("session", id);
      state.confirmed = true;
      setStatus(TEXT.online, true);
      greetIfNew();
    });
    socket.on("bot_uttered", onBotMessage);
    socket.on("disconnect", function () {
      state.confirmed = false;
      setStatus(TEXT.offline, false);
    });
    socket.on("connect_error", function () {
      setStatus(TEXT.offline, false);
    });
  }

  function reset() {
    state.sessionId = null;
    state.history = [];
    state.greeted = false;
    save("session", null);
    save("history", []);
    save("greeted", false);
    log.textContent = "";
    showTyping(false);
    if (state.socket && state.socket.connected) {
      state.confirmed = false;
      setStatus(TEXT.connecting, false);
      state.socket.emit("session_request", { session_id: null });
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (send(input.value)) input.value = "";
  });
  launcher.addEventListener("click", function () { setOpen(true); });
  closeButton.addEventListener("click", function () { setOpen(false); });
  resetButton.addEventListener("click", reset);

  function loadOnce(tag, attrs, done) {
    var node = document.createElement(tag);
    Object.keys(attrs).forEach(function (k) { node[k] = attrs[k]; });
    if (done) node.addEventListener("load", done);
    node.addEventListener("error", function () { setStatus("Impossible de charger le chat.", false); });
    document.head.appendChild(node);
  }

  function start() {
    document.body.appendChild(root);
    state.history.forEach(renderMessage);
    setStatus(TEXT.connecting, false);
    setOpen(!!state.open);
    if (window.io) connect();
    else loadOnce("script", { src: base + "vendor/socket.io.min.js" }, connect);
  }

  if (!document.querySelector('link[data-chat-cagou]')) {
    var css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = base + "chat-cagou.css";
    css.setAttribute("data-chat-cagou", "");
    document.head.appendChild(css);
  }

  window.ChatCagou = { open: function () { setOpen(true); }, close: function () { setOpen(false); }, reset: reset };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
