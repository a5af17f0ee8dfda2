// The chat page: a conversation with /chat (streamed, server-sent events) shown as a
// thread. Each answer sentence links to the source sentence it cites (the passage opens
// with that sentence highlighted); thumbs up/down per answer and "this source helped" per
// citation are logged to /events; related documents come from /recommend/item.
const $ = (id) => document.getElementById(id);
let conversationId = null;

function userId() {
  let id = localStorage.getItem("ragrec-user");
  if (!id) {
    id = "web-" + Math.random().toString(36).slice(2, 12);
    localStorage.setItem("ragrec-user", id);
  }
  return id;
}

function headers() {
  const h = { "Content-Type": "application/json", "X-Ragrec-User": userId() };
  const token = $("token").value || localStorage.getItem("ragrec-token");
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

function showError(message) {
  $("status").textContent = message;
}

async function init() {
  const health = await (await fetch("/health")).json();
  $("model").textContent = `index ${health.index} · model ${health.model_version || "none"}`;
  $("token-row").hidden = !health.auth;
  $("token").value = localStorage.getItem("ragrec-token") || "";
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function openSource(passage, citation) {
  $("source-panel").hidden = false;
  $("source-title").textContent = `[${passage.number}] ${passage.title || passage.doc_id} ` +
    `(${passage.doc_id})`;
  const source = $("source");
  source.innerHTML = "";
  const text = passage.text;
  if (citation) {
    const mark = el("mark", "", text.slice(citation.start, citation.end));
    source.append(text.slice(0, citation.start), mark, text.slice(citation.end));
    mark.scrollIntoView({ block: "nearest" });
  } else {
    source.append(text);
  }
}

async function logEvents(events) {
  if (!events.length) return null;
  return fetch("/events", { method: "POST", headers: headers(),
    body: JSON.stringify({ events }) });
}

async function sendFeedback(turn, type, docIds, button) {
  const response = await logEvents(docIds.map((docId) => ({
    user_id: userId(), doc_id: docId, type, query: turn.standalone_query, surface: "chat",
    conversation_id: turn.conversation_id, turn: turn.turn, trace_id: turn.trace_id })));
  if (!response) return;
  if (!response.ok) {
    showError(`feedback not stored (${response.status})`);
    return;
  }
  button.setAttribute("aria-pressed", "true");
  $("status").textContent = "Thanks for the feedback";
}

function renderAnswer(item, turn) {
  const passages = Object.fromEntries(turn.passages.map((p) => [p.number, p]));
  const answer = item.querySelector(".answer");
  answer.innerHTML = "";
  if (turn.mode === "refused" || !turn.sentences.length) {
    answer.textContent = turn.answer;
  } else {
    for (const sentence of turn.sentences) {
      const span = el("span", "sentence" + (sentence.supported ? "" : " unsupported"),
                      sentence.text);
      if (!sentence.supported) span.title = "not supported by the passages it cites";
      answer.append(span);
      for (const c of sentence.citations) {
        const link = el("button", "cite", `[${c.number}]`);
        link.type = "button";
        link.dataset.docId = c.doc_id;
        link.addEventListener("click", () => openSource(passages[c.number], c));
        answer.append(link);
      }
      answer.append(" ");
    }
    if (turn.removed_citations && turn.removed_citations.length) {
      answer.append(el("p", "note", "Citations " +
        turn.removed_citations.map((n) => `[${n}]`).join(", ") +
        " named no retrieved passage and were removed."));
    }
  }
  const list = item.querySelector(".citations");
  list.innerHTML = "";
  const firstSpan = {};
  for (const s of turn.sentences) {
    for (const c of s.citations) if (!(c.number in firstSpan)) firstSpan[c.number] = c;
  }
  for (const p of turn.citations) {
    const li = el("li");
    li.value = p.number;
    li.dataset.docId = p.doc_id;
    const title = el("a", "cite-title", p.title || p.doc_id);
    title.href = "#";
    title.addEventListener("click", (event) => {
      event.preventDefault();
      openSource(p, firstSpan[p.number]);
    });
    const helped = el("button", "helped", "this source helped");
    helped.type = "button";
    helped.addEventListener("click", () => sendFeedback(turn, "helped", [p.doc_id], helped));
    li.append(title, ` (${p.doc_id}) `, helped, el("span", "excerpt", p.text.slice(0, 200)));
    list.append(li);
  }
  const docs = [...new Set(turn.citations.map((p) => p.doc_id))];
  const feedback = item.querySelector(".feedback");
  feedback.hidden = turn.mode === "refused";
  for (const [cls, type] of [["up", "up"], ["down", "down"]]) {
    const button = feedback.querySelector("." + cls);
    button.onclick = () => sendFeedback(turn, type, docs, button);
  }
}

async function loadRelated(docId) {
  $("related-for").textContent = `for ${docId}`;
  const response = await fetch(`/recommend/item/${encodeURIComponent(docId)}?k=5`,
                               { headers: headers() });
  const list = $("related");
  list.innerHTML = "";
  if (!response.ok) return;
  const related = await response.json();
  // What was shown (impressions) and what was opened (clicks), tied to this response.
  const shown = (item, position, type) => ({
    user_id: userId(), doc_id: item.doc_id, type, surface: "recommend_item",
    scene_id: "related", trace_id: related.trace_id, position });
  related.items.forEach((item, position) => {
    const li = el("li");
    const link = el("a", "", `${item.title} (${item.doc_id})`);
    link.href = "#";
    link.addEventListener("click", (event) => {
      event.preventDefault();
      logEvents([shown(item, position, "click")]);
      loadRelated(item.doc_id);
    });
    li.dataset.docId = item.doc_id;
    li.append(link);
    list.append(li);
  });
  logEvents(related.items.map((item, position) => shown(item, position, "impression")));
}

function parseEvents(buffer, onEvent) {
  const blocks = buffer.split("\n\n");
  for (const block of blocks.slice(0, -1)) {
    let event = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    onEvent(event, data ? JSON.parse(data) : null);
  }
  return blocks[blocks.length - 1];
}

function newTurn(question) {
  const item = el("li", "turn");
  item.append(el("div", "question", question), el("div", "answer"),
              el("ol", "citations"));
  const feedback = el("div", "feedback");
  feedback.hidden = true;
  const up = el("button", "up", "👍");
  const down = el("button", "down", "👎");
  up.type = down.type = "button";
  up.title = "good answer";
  down.title = "bad answer";
  feedback.append("Was this useful?", up, down);
  item.append(feedback);
  $("thread").append(item);
  return item;
}

async function ask(question) {
  if ($("token").value) localStorage.setItem("ragrec-token", $("token").value);
  $("status").textContent = "Searching…";
  const body = { question, stream: true };
  if (conversationId) body.conversation_id = conversationId;
  const response = await fetch("/chat", { method: "POST", headers: headers(),
    body: JSON.stringify(body) });
  if (!response.ok) {
    const error = await response.json().catch(() => ({}));
    showError((error.error && error.error.message) || `error ${response.status}`);
    return;
  }
  const item = newTurn(question);
  const answer = item.querySelector(".answer");
  let passages = [];
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer = parseEvents(buffer + decoder.decode(value, { stream: true }), (event, data) => {
      if (event === "passages") passages = data;
      if (event === "delta") answer.textContent += data.text;
      if (event === "error") showError(data.message);
      if (event === "done") {
        const turn = { ...data, passages };
        conversationId = turn.conversation_id;
        item.dataset.turn = turn.turn;
        if (turn.mode === "refused") item.classList.add("refused");
        renderAnswer(item, turn);
        $("status").textContent = turn.mode === "refused" ? "No answer" :
          `Answered (${turn.mode}) from ${turn.citations.length} cited passage(s)`;
        if (turn.citations.length) loadRelated(turn.citations[0].doc_id);
      }
    });
  }
}

$("ask-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  $("question").value = "";
  ask(question).catch((error) => showError(String(error)));
});
$("new-chat").addEventListener("click", () => {
  conversationId = null;
  $("thread").innerHTML = "";
  $("source-panel").hidden = true;
  $("status").textContent = "New conversation";
});
init().catch((error) => showError(String(error)));
