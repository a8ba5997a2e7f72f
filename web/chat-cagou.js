/*
 * Chat Cagou: the website chat widget, on Rasa's socketio channel.
 *
 * Embed with one tag (docs/channels.md):
 *   <script src="https://CHAT-HOST/chat-cagou.js" data-server="https://RASA-HOST" defer></script>
 * It loads chat-cagou.css and vendor/socket.io.min.js (npm socket.io-client) from beside
 * itself, unless the page already provides window.io.
 *
 * Safety: every text (bot's, user's, button titles) goes into the page through textContent
 * and text nodes, never as HTML; the bot's Markdown subset (bold, lists, links) becomes DOM
 * nodes; links are only https, mailto and tel (Markdown links) or built from URLs, e-mail
 * addresses and phone numbers found in the text.
 * Session: the session id (issued and signed by the server: sent back as it was received)
 * and the messages shown, with their times, are kept in sessionStorage, so a reload in the
 * same tab shows the history and Rasa continues the same conversation. With
 * data-storage="local" they are kept in localStorage instead (same keys): every tab of the
 * site shows the same conversation.
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
    storage: data.storage === "local" ? "localStorage" : "sessionStorage",
  };
  var shared = config.storage === "localStorage"; // other tabs read and write the same history

  var TEXT = {
    launcher: "Discuter avec " + config.title,
    close: "Réduire la discussion",
    reset: "Nouvelle conversation",
    placeholder: "Écrivez votre message…",
    send: "Envoyer",
    inputLabel: "Votre message",
    log: "Messages de la conversation",
    connecting: "Connexion en cours…",
    online: "En ligne",
    offline: "Connexion perdue, nouvelle tentative…",
    offlineHelp:
      "Envoi impossible sans connexion : votre message reste dans le champ, " +
      "vous pourrez l'envoyer dès le retour de la connexion.",
    typing: config.title + " écrit…",
    you: "Vous",
    agent: function (name) { return name + " (conseiller)"; },
    unread: function (n) { return n === 1 ? "1 nouveau message" : n + " nouveaux messages"; },
  };
  var MAX_HISTORY = 200;
  var TYPING_TIMEOUT_MS = 20000;
  // Shared storage: how far apart two tabs may stamp the same incoming message (see receive()).
  var ECHO_MS = 30000;

  // --- storage (sessionStorage, or localStorage; in memory if the browser refuses it) -----

  var memory = {};
  var prefix = config.storageKey + ":";
  function load(key, fallback) {
    try {
      var raw = window[config.storage].getItem(prefix + key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch (e) {
      return key in memory ? memory[key] : fallback;
    }
  }
  function save(key, value) {
    memory[key] = value;
    try {
      window[config.storage].setItem(prefix + key, JSON.stringify(value));
    } catch (e) { /* private mode, quota: memory only */ }
  }
  function loadHistory() {
    var history = load("history", []);
    return Array.isArray(history) ? history : [];
  }

  var state = {
    sessionId: load("session", null),
    history: loadHistory(),
    open: load("open", config.open),
    greeted: load("greeted", false),
    seen: Number(load("seen", 0)) || 0, // the time (ms) up to which the messages were seen
    confirmed: false,
    lost: false, // the connection was lost and is not back yet
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

  // The bot's answers are written in a small Markdown subset (actions/markdown.py): blocks
  // separated by blank lines, "- " bullet lists, **bold**, [text](url) links. Rendered into
  // DOM nodes, never as HTML; a link whose scheme is not https, mailto or tel stays text.
  var MD_INLINE = /\*\*([\s\S]+?)\*\*|\[([^\]\n]*)\]\(([^)\s]*)\)/g;
  function appendInline(parent, text) {
    var last = 0;
    var match;
    var inline = new RegExp(MD_INLINE.source, "g");
    while ((match = inline.exec(text)) !== null) {
      appendText(parent, text.slice(last, match.index));
      if (match[1] !== undefined) {
        var strong = el("strong");
        appendInline(strong, match[1]);
        parent.appendChild(strong);
      } else if (/^(https:|mailto:|tel:)/i.test(match[3])) {
        var link = el("a", "cc-link", match[2] || match[3]);
        link.href = match[3];
        if (/^https:/i.test(match[3])) {
          link.target = "_blank";
          link.rel = "noopener noreferrer";
        }
        parent.appendChild(link);
      } else {
        appendText(parent, match[2] || "");
      }
      last = inline.lastIndex;
    }
    appendText(parent, text.slice(last));
  }

  function appendMarkdown(parent, text) {
    var list = null;
    String(text === undefined || text === null ? "" : text).split("\n").forEach(function (line) {
      if (!line.trim()) { list = null; return; }
      var bullet = /^[-•] /.test(line);
      if (bullet) {
        if (!list) { list = el("ul", "cc-list"); parent.appendChild(list); }
        var item = el("li");
        appendInline(item, line.slice(2));
        list.appendChild(item);
        return;
      }
      list = null;
      var paragraph = el("p", "cc-para");
      appendInline(paragraph, line);
      parent.appendChild(paragraph);
    });
  }

  // --- widget -----------------------------------------------------------------------------

  // A landmark, so that the launcher is not loose content of the host page.
  var root = el("aside", "cc-root");
  root.id = "chat-cagou";
  root.setAttribute("aria-label", config.title);

  var launcher = el("button", "cc-launcher");
  launcher.type = "button";
  launcher.appendChild(el("span", "cc-launcher-label", TEXT.launcher));
  // The count of messages that came while the panel was closed; its label joins the
  // launcher's name ("Discuter avec Chat Cagou 2 nouveaux messages").
  var badge = el("span", "cc-badge");
  badge.setAttribute("role", "img");
  badge.hidden = true;
  launcher.appendChild(badge);
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "chat-cagou-panel");
  // The log is hidden with the panel: new messages are announced from here instead.
  var announcer = el("p", "cc-sr");
  announcer.setAttribute("role", "status");
  announcer.setAttribute("aria-live", "polite");

  var panel = el("section", "cc-panel");
  panel.id = "chat-cagou-panel";
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-labelledby", "chat-cagou-title");
  panel.hidden = true;

  var header = el("header", "cc-header");
  var heading = el("div", "cc-heading");
  var title = el("h2", "cc-title", config.title);
  title.id = "chat-cagou-title";
  heading.appendChild(title);
  var status = el("p", "cc-status", TEXT.connecting);
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");
  heading.appendChild(status);
  // An icon button: named by its label; the glyph is decoration.
  function iconButton(className, glyph, label) {
    var button = el("button", "cc-icon " + className);
    button.type = "button";
    button.title = label;
    button.setAttribute("aria-label", label);
    var icon = el("span", "", glyph);
    icon.setAttribute("aria-hidden", "true");
    button.appendChild(icon);
    return button;
  }
  var resetButton = iconButton("cc-reset", "↺", TEXT.reset);
  var closeButton = iconButton("cc-close", "×", TEXT.close);
  header.appendChild(heading);
  header.appendChild(resetButton);
  header.appendChild(closeButton);

  var log = el("div", "cc-log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  log.setAttribute("aria-label", TEXT.log);
  log.tabIndex = 0; // it scrolls: the keyboard must reach it (arrows, Page Up/Down)
  var typing = el("p", "cc-typing", TEXT.typing);
  typing.hidden = true;
  var offlineNote = el("p", "cc-offline-note", TEXT.offlineHelp);
  offlineNote.id = "chat-cagou-offline";
  offlineNote.hidden = true;

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
  panel.appendChild(offlineNote);
  panel.appendChild(form);
  root.appendChild(launcher);
  root.appendChild(announcer);
  root.appendChild(panel);

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  // `byUser`: opened by the launcher or the API, so the focus goes to the input; a panel open
  // at page load does not take the focus from the host page.
  function setOpen(open, byUser) {
    var hadFocus = panel.contains(document.activeElement);
    state.open = open;
    save("open", open);
    panel.hidden = !open;
    launcher.hidden = open;
    launcher.setAttribute("aria-expanded", String(open));
    if (open) {
      scrollDown();
      markSeen();
      if (byUser) input.focus();
      greetIfNew();
    } else if (hadFocus) {
      launcher.focus(); // the focus was in the panel, which is gone
    }
    updateBadge();
  }

  // A new conversation, open: ask the assistant for its first message (what it does, the
  // privacy notice, suggestions). It comes from Rasa, so it is in the transcript; the
  // payload itself is not shown.
  var START_PAYLOAD = "/demarrer";
  function greetIfNew() {
    if (shared) state.greeted = load("greeted", state.greeted); // another tab may have asked
    if (!state.open || !state.confirmed || state.greeted || state.history.length) return;
    state.greeted = true;
    save("greeted", true);
    state.socket.emit("user_uttered", { message: START_PAYLOAD, session_id: state.sessionId });
    showTyping(true);
  }

  // `lost`: the connection was lost (not the first connection): say that sending waits.
  function setStatus(text, online, lost) {
    status.textContent = text;
    root.classList.toggle("cc-online", !!online);
    sendButton.disabled = !online;
    offlineNote.hidden = !lost;
    [input, sendButton].forEach(function (node) {
      if (lost) node.setAttribute("aria-describedby", offlineNote.id);
      else node.removeAttribute("aria-describedby");
    });
    refreshButtons();
  }

  // --- unread badge -----------------------------------------------------------------------

  // Seen: every message up to now (and up to the newest stamp: another tab's clock).
  function markSeen() {
    var now = Date.now();
    state.history.forEach(function (entry) { if (entry.at > now) now = entry.at; });
    if (now > state.seen) {
      state.seen = now;
      save("seen", now);
    }
  }

  var announced = 0;
  function updateBadge() {
    var count = 0;
    if (!state.open) {
      state.history.forEach(function (entry) {
        if (entry.from !== "user" && entry.at > state.seen) count++;
      });
    }
    badge.hidden = !count;
    badge.textContent = count > 99 ? "99+" : String(count);
    if (count) badge.setAttribute("aria-label", TEXT.unread(count));
    else badge.removeAttribute("aria-label");
    if (count > announced) announcer.textContent = TEXT.unread(count);
    else if (!count) announcer.textContent = "";
    announced = count;
  }

  // --- messages ---------------------------------------------------------------------------

  var clock = null;
  try {
    clock = new Intl.DateTimeFormat("fr-FR", { hour: "2-digit", minute: "2-digit" });
  } catch (e) { /* no Intl: formatted by hand below */ }
  function timeOf(at) {
    var date = new Date(at);
    if (clock) return clock.format(date);
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  function stamp(entry) {
    entry.id = Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
    entry.at = Date.now();
    return entry;
  }

  // The index of the last message of the customer or the assistant: the buttons of every
  // message before it are past. A live chat (between the "joined" and "left" notices) does
  // not count, neither the staff's messages nor the customer's, so that the handoff answer's
  // "Revenir à l'assistant" stays usable while talking with a person.
  function lastTurn(history) {
    var last = -1;
    var withStaff = false;
    history.forEach(function (entry, i) {
      if (entry.notice) withStaff = entry.notice === "joined";
      else if (entry.from === "bot" || (entry.from === "user" && !withStaff)) last = i;
    });
    return last;
  }

  // Enables the buttons of the current message only (derived from the history, so a reload
  // shows the same), and only when connected; a choice stays marked.
  function refreshButtons() {
    var last = lastTurn(state.history);
    var focused = document.activeElement;
    var lostFocus = false;
    Array.prototype.forEach.call(log.querySelectorAll(".cc-buttons"), function (group) {
      var index = Number(group.getAttribute("data-index"));
      var entry = state.history[index] || {};
      Array.prototype.forEach.call(group.children, function (b, j) {
        var payload = ((entry.buttons || [])[j] || {}).payload;
        var disabled = !!entry.used || index < last || !state.confirmed;
        if (disabled && b === focused) lostFocus = true;
        b.disabled = disabled;
        b.classList.toggle("cc-chosen", !!entry.used && entry.used === payload);
      });
    });
    // A disabled button loses the focus: the keyboard goes on from the input.
    if (lostFocus && state.open) input.focus();
  }

  // One message of the history: {id, at (ms), from: "user"|"bot"|"agent", text,
  // buttons: [{title, payload}], used (the payload chosen), agent (a staff member's first
  // name), notice ("joined"/"left": shown as a notice)}.
  function renderMessage(entry, index) {
    if (entry.notice) {
      var notice = el("p", "cc-notice", entry.text);
      notice.setAttribute("role", "status");
      log.appendChild(notice);
      return;
    }
    var kind = entry.from === "user" ? "user" : entry.from === "agent" ? "agent" : "bot";
    var author = kind === "user" ? TEXT.you : kind === "agent" ? TEXT.agent(entry.agent) : config.title;
    var row = el("div", "cc-message cc-" + kind);
    // Who speaks, for assistive technologies; the shown author of a staff member is hidden
    // from them so that it is not read twice.
    row.appendChild(el("span", "cc-sr", author + " :"));
    if (kind === "agent") {
      var shown = el("span", "cc-author", author);
      shown.setAttribute("aria-hidden", "true");
      row.appendChild(shown);
    }
    var bubble = el("div", "cc-bubble");
    // The assistant writes Markdown; customers and staff write plain text.
    if (kind === "bot") appendMarkdown(bubble, entry.text);
    else appendText(bubble, entry.text);
    row.appendChild(bubble);
    if (entry.at) {
      var time = el("time", "cc-time", timeOf(entry.at));
      time.setAttribute("datetime", new Date(entry.at).toISOString());
      row.appendChild(time);
    }
    if (entry.buttons && entry.buttons.length) {
      var group = el("div", "cc-buttons");
      group.setAttribute("data-index", String(index));
      entry.buttons.forEach(function (button) {
        var b = el("button", "cc-button", String(button.title || ""));
        b.type = "button";
        b.addEventListener("click", function () { choose(entry.id, index, button); });
        group.appendChild(b);
      });
      row.appendChild(group);
    }
    log.appendChild(row);
  }

  // Shows the history: appends the messages not shown yet, or renders it all again when it
  // changed otherwise (a new conversation, the oldest messages dropped, another tab).
  // Appending only matters: the log is a live region, and a new node is read aloud.
  var rendered = []; // the id of each message shown, in order
  function sync() {
    var ids = state.history.map(function (entry, i) { return entry.id || "#" + i; });
    var same = rendered.length <= ids.length && rendered.every(function (id, i) { return id === ids[i]; });
    if (!same) {
      log.textContent = "";
      rendered = [];
    }
    for (var i = rendered.length; i < ids.length; i++) renderMessage(state.history[i], i);
    rendered = ids;
    refreshButtons();
    if (state.open) markSeen();
    updateBadge();
    scrollDown();
  }

  // Every change to the history goes through here; with shared storage, it applies to what
  // the other tabs wrote.
  function update(change) {
    if (shared) state.history = loadHistory();
    change(state.history);
    if (state.history.length > MAX_HISTORY) state.history = state.history.slice(-MAX_HISTORY);
    save("history", state.history);
    sync();
  }

  function choose(entryId, index, button) {
    if (!state.confirmed) return;
    var payload = String(button.payload || button.title || "");
    var chosen = false;
    update(function (history) {
      var at = index;
      if (entryId) {
        at = -1;
        history.forEach(function (entry, i) { if (entry.id === entryId) at = i; });
      }
      var entry = history[at];
      if (!entry || entry.used || at < lastTurn(history)) return;
      entry.used = payload;
      chosen = true;
    });
    if (chosen && send(payload, String(button.title || ""))) input.focus();
  }

  // With shared storage every tab of the conversation receives the assistant's messages: the
  // first tab to get one stores it, the others find it stored after the last customer message
  // (same content, stamped close by, not already taken by this tab) and only show it.
  var taken = {}; // ids of the stored messages this tab received
  function sameMessage(a, b) {
    return a.from === b.from && a.text === b.text && (a.agent || "") === (b.agent || "") &&
      (a.notice || "") === (b.notice || "") &&
      JSON.stringify(a.buttons || []) === JSON.stringify(b.buttons || []);
  }
  function receive(entry) {
    stamp(entry);
    update(function (history) {
      for (var i = history.length - 1; shared && i >= 0 && history[i].from !== "user"; i--) {
        var other = history[i];
        if (other.id && !taken[other.id] && Math.abs(entry.at - (other.at || 0)) < ECHO_MS && sameMessage(other, entry)) {
          taken[other.id] = true;
          return;
        }
      }
      taken[entry.id] = true;
      history.push(entry);
    });
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
  // Offline it returns false and sends nothing: the form then keeps the text in the input, for
  // the customer to send once back online. Nothing is queued, so nothing reaches later a
  // conversation the server may have replaced meanwhile, or after the customer gave up.
  function send(payload, shown) {
    payload = String(payload || "").trim();
    if (!payload || !state.confirmed) return false;
    update(function (history) { history.push(stamp({ from: "user", text: shown || payload })); });
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
      receive({ from: "agent", agent: message.agent.slice(0, 40), text: text, notice: notice });
      return;
    }
    receive({ from: "bot", text: text, buttons: buttons });
  }

  function requestSession(id) {
    state.confirmed = false;
    setStatus(state.lost ? TEXT.offline : TEXT.connecting, false, state.lost);
    // Rasa puts this socket in the room of the session id: replies go there.
    state.socket.emit("session_request", { session_id: id });
  }

  function connect() {
    var socket = window.io(config.server, {
      path: config.socketPath,
      // Rasa 3.6's Sanic cannot receive WebSocket frames on Python 3.11 (channels/socketio.py).
      transports: ["polling"],
      withCredentials: false,
    });
    state.socket = socket;
    socket.on("connect", function () { requestSession(state.sessionId); });
    socket.on("session_confirm", function (confirmed) {
      var id = typeof confirmed === "string" ? confirmed : confirmed && confirmed.session_id;
      if (!id) return;
      if (state.sessionId && id !== state.sessionId) {
        // The server refused our id: a new conversation, so the old history goes.
        state.history = [];
        save("history", []);
        sync();
        state.greeted = false;
        save("greeted", false);
      }
      state.sessionId = id;
      save("session", id);
      state.confirmed = true;
      state.lost = false;
      setStatus(TEXT.online, true, false);
      greetIfNew();
    });
    socket.on("bot_uttered", onBotMessage);
    socket.on("disconnect", function () { lose(); });
    socket.on("connect_error", function () { lose(); });
  }

  function lose() {
    state.confirmed = false;
    state.lost = true;
    showTyping(false); // an answer on its way is lost with the connection
    setStatus(TEXT.offline, false, true);
  }

  function reset() {
    state.sessionId = null;
    state.greeted = false;
    save("session", null);
    save("greeted", false);
    state.history = [];
    save("history", []);
    sync();
    showTyping(false);
    if (state.socket && state.socket.connected) requestSession(null);
  }

  // Shared storage: another tab changed the conversation.
  function onStorage(event) {
    if (!event.key || event.key.indexOf(prefix) !== 0) return;
    try {
      if (event.storageArea !== window[config.storage]) return;
    } catch (e) {
      return;
    }
    var key = event.key.slice(prefix.length);
    if (key === "history") {
      state.history = loadHistory();
      sync();
    } else if (key === "seen") {
      state.seen = Math.max(state.seen, Number(load("seen", 0)) || 0);
      updateBadge();
    } else if (key === "greeted") {
      state.greeted = load("greeted", false);
    } else if (key === "session") {
      // A new conversation there (↺): this tab joins it once its id is known.
      var id = load("session", null);
      if (id && id !== state.sessionId) {
        state.sessionId = id;
        showTyping(false);
        if (state.socket && state.socket.connected) requestSession(id);
      }
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (send(input.value)) input.value = "";
  });
  launcher.addEventListener("click", function () { setOpen(true, true); });
  closeButton.addEventListener("click", function () { setOpen(false); });
  resetButton.addEventListener("click", reset);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape" || event.key === "Esc") {
      event.preventDefault();
      setOpen(false);
      launcher.focus();
    }
  });
  if (shared) window.addEventListener("storage", onStorage);

  function loadOnce(tag, attrs, done) {
    var node = document.createElement(tag);
    Object.keys(attrs).forEach(function (k) { node[k] = attrs[k]; });
    if (done) node.addEventListener("load", done);
    node.addEventListener("error", function () { setStatus("Impossible de charger le chat.", false, false); });
    document.head.appendChild(node);
  }

  function start() {
    document.body.appendChild(root);
    setStatus(TEXT.connecting, false, false);
    sync();
    setOpen(!!state.open, false);
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

  window.ChatCagou = {
    open: function () { setOpen(true, true); },
    close: function () { setOpen(false); },
    reset: reset,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
