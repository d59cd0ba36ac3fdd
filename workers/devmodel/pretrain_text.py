"""Synthetic, copy-heavy pre-training text for the tiny base model (standard library only).

A 4-layer model learns to copy values from its context (induction heads) quickly when much of
its text restates values it has just seen. Every document here does: a sentence with names, ids
and numbers followed by the same values in a structured form (JSON with varied key names,
`key: value` lines, a list), an extraction chat, or a tool-calling chat rendered through the chat
template with the arguments taken from the user turn. Values are drawn from large pools so they
must be copied, not memorised. The schemas, nouns and tools are deliberately *not* the sample
tenants' (orders: item/name/qty; agent: lookup_order/issue_refund/escalate), so the base model
knows the shapes but a tenant's LoRA still has to teach its own schema.

Same seed -> same documents, in the same order.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

Render = Callable[[list[dict[str, Any]], list[dict[str, Any]] | None], str]


def _words(text: str) -> list[str]:
    return text.split()


FIRST = _words(
    "Ada Amir Anna Arlo Asha Ayla Bea Boris Cato Cleo Cyrus Dana Dario Eden Elif Emil Enzo Esme "
    "Ezra Faye Finn Gia Gus Hana Hugo Ines Ira Ivan Jada Jonas Juno Kai Kenji Lara Leon Lina Luca "
    "Mara Marco Mia Milo Nadia Nico Nina Omar Oona Otto Pia Raf Rhea Rio Ruth Sade Saul Sofia "
    "Tess Theo Toma Una Vera Wade Xena Yuki Yusuf Zain Zara Alice Bob Carol Dave Emma Frank Grace "
    "Henry Irene Jack Kara Liam Maya Noah Olivia Paul Quinn Rosa Sam Tara Uma Victor Wendy Zoe"
)
LAST = _words(
    "Abbott Baker Chen Diaz Evans Fox Garcia Hall Ito Jones Khan Lopez Moreau Nakamura Okafor "
    "Patel Quist Rossi Silva Tanaka Ueda Vogel Walsh Young Zhou Novak Berg Costa Dubois Ferreira"
)
CITIES = _words(
    "Oslo Lima Cairo Quito Lisbon Denver Austin Dublin Kyoto Perth Porto Leeds Nairobi Seoul "
    "Madrid Boston Accra Hanoi Tunis Riga Zagreb Bergen Malmo Turin Lyon Graz Cork Osaka Dakar "
    "Lagos Havana Bogota Manila Sydney Auckland Vienna Prague Krakow Tallinn Reno Tucson Halifax"
)
THINGS = _words(
    "lanterns umbrellas kettles blankets maps bicycles helmets scarves boots jackets ladders "
    "buckets brushes stamps envelopes folders cables chargers mirrors baskets candles teapots "
    "jars bottles crates tents ropes hammers wrenches saws drills nails screws tiles bricks "
    "shovels rakes seeds bulbs fans heaters radios cameras tripods speakers keyboards monitors "
    "printers desks stools shelves rugs curtains quilts jugs bowls forks knives trays vases"
)
COLORS = _words("red blue green amber violet grey black white golden silver teal coral")
DAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
MONTHS = _words(
    "January February March April May June July August September October November December"
)
ROOMS = _words("Atlas Birch Cedar Delta Ember Fjord Grove Harbor Iris Juniper Kestrel Lotus")
WORDS = _words(
    "budget draft launch review roadmap invoice survey report schedule backup design audit "
    "migration workshop interview contract proposal summary update release checklist"
)
LANGS = _words("French Spanish German Italian Japanese Turkish Polish Dutch Greek Korean")
LETTERS = "ABCDEFGHJKLMNPRSTVWXZ"


def _person(r: random.Random) -> str:
    return r.choice(FIRST) if r.random() < 0.7 else f"{r.choice(FIRST)} {r.choice(LAST)}"


def _code(r: random.Random) -> str:
    prefix = r.choice(LETTERS) if r.random() < 0.6 else "".join(r.sample(LETTERS, 3))
    return f"{prefix}-{r.randint(100, 99999)}"


def _time(r: random.Random) -> str:
    return f"{r.randint(7, 20):02d}:{r.choice(['00', '15', '30', '45'])}"


def _date(r: random.Random) -> str:
    return f"{r.choice(MONTHS)} {r.randint(1, 28)}"


VALUES: dict[str, Callable[[random.Random], Any]] = {
    "person": _person,
    "first": lambda r: r.choice(FIRST),
    "city": lambda r: r.choice(CITIES),
    "thing": lambda r: r.choice(THINGS),
    "color": lambda r: r.choice(COLORS),
    "day": lambda r: r.choice(DAYS),
    "date": _date,
    "time": _time,
    "room": lambda r: r.choice(ROOMS),
    "code": _code,
    "small": lambda r: r.randint(1, 40),
    "big": lambda r: r.randint(100, 9999),
    "price": lambda r: round(r.randint(100, 99999) / 100, 2),
    "word": lambda r: r.choice(WORDS),
    "lang": lambda r: r.choice(LANGS),
    "email": lambda r: f"{r.choice(FIRST).lower()}.{r.choice(LAST).lower()}@example.com",
}

# (noun, {field: value kind}, sentences, key vocabularies: field -> key, one dict per schema)
Scenario = tuple[str, dict[str, str], list[str], list[dict[str, str]]]
SCENARIOS: list[Scenario] = [
    ("booking", {"guest": "person", "city": "city", "nights": "small"}, [
        "{guest} booked {nights} nights in {city}.",
        "Please reserve a room in {city} for {guest}, {nights} nights.",
        "{guest} will stay in {city} for {nights} nights.",
    ], [{"guest": "guest", "city": "city", "nights": "nights"},
        {"guest": "traveler", "city": "destination", "nights": "length"},
        {"guest": "who", "city": "where", "nights": "nights_count"}]),
    ("meeting", {"person": "person", "day": "day", "time": "time", "room": "room"}, [
        "{person} meets the team on {day} at {time} in the {room} room.",
        "Set up a meeting with {person} in {room} on {day}, {time}.",
        "On {day} at {time}, {person} is in the {room} room.",
    ], [{"person": "attendee", "day": "day", "time": "time", "room": "room"},
        {"person": "with", "day": "weekday", "time": "start", "room": "location"}]),
    ("shipment", {"code": "code", "sender": "person", "weight": "small", "city": "city"}, [
        "Parcel {code} from {sender} weighs {weight} kg and goes to {city}.",
        "{sender} shipped parcel {code} ({weight} kg) to {city}.",
        "Tracking {code}: {weight} kg, sent by {sender}, bound for {city}.",
    ], [{"code": "tracking", "sender": "sender", "weight": "kg", "city": "to"},
        {"code": "parcel_id", "sender": "from", "weight": "weight", "city": "destination"}]),
    ("payment", {"payer": "person", "amount": "price", "code": "code"}, [
        "{payer} paid {amount} dollars for invoice {code}.",
        "Invoice {code} was settled by {payer}: {amount} dollars.",
        "We received {amount} dollars from {payer} (invoice {code}).",
    ], [{"payer": "payer", "amount": "amount", "code": "invoice"},
        {"payer": "customer", "amount": "total", "code": "reference"}]),
    ("reading", {"city": "city", "temp": "small", "color": "color", "date": "date"}, [
        "On {date} the sky over {city} was {color} and it was {temp} degrees.",
        "{city}, {date}: {temp} degrees under a {color} sky.",
    ], [{"city": "city", "temp": "temp", "color": "sky", "date": "date"},
        {"city": "station", "temp": "celsius", "color": "sky_color", "date": "day"}]),
    ("ticket", {"code": "code", "customer": "person", "topic": "word", "count": "small"}, [
        "Ticket {code} from {customer} is about the {topic} and has {count} replies.",
        "{customer} opened ticket {code} on the {topic}; {count} replies so far.",
    ], [{"code": "ticket", "customer": "customer", "topic": "topic", "count": "replies"},
        {"code": "id", "customer": "opened_by", "topic": "subject", "count": "reply_count"}]),
    ("contact", {"person": "person", "email": "email", "city": "city"}, [
        "{person} lives in {city} and reads mail at {email}.",
        "You can write to {person} at {email}; they are based in {city}.",
    ], [{"person": "full_name", "email": "email", "city": "city"},
        {"person": "contact", "email": "address", "city": "home"}]),
    ("loan", {"borrower": "person", "thing": "thing", "count": "small", "date": "date"}, [
        "{borrower} borrowed {count} {thing} until {date}.",
        "Lend {count} {thing} to {borrower}; they come back on {date}.",
    ], [{"borrower": "borrower", "thing": "object", "count": "amount", "date": "due"},
        {"borrower": "lender_to", "thing": "goods", "count": "units", "date": "return_date"}]),
    ("score", {"player": "person", "points": "big", "color": "color"}, [
        "{player} scored {points} points for the {color} team.",
        "The {color} team's best player, {player}, made {points} points.",
    ], [{"player": "player", "points": "points", "color": "team"},
        {"player": "athlete", "points": "score", "color": "side"}]),
]  # fmt: skip

_PLAIN_HEADS = ["Record:", "As JSON:", "Fields:", "Summary:", "Data:", "Parsed:"]


def _fill(r: random.Random, scenario: Scenario) -> tuple[str, dict[str, Any], dict[str, str]]:
    _, fields, sentences, schemas = scenario
    values = {f: VALUES[kind](r) for f, kind in fields.items()}
    sentence = r.choice(sentences).format(**values)
    return sentence, values, r.choice(schemas)


def _restate(r: random.Random, values: dict[str, Any], keys: dict[str, str]) -> str:
    record = {keys[f]: v for f, v in values.items()}
    style = r.randrange(4)
    if style == 0:
        return json.dumps(record, sort_keys=True)
    if style == 1:
        return json.dumps(record)
    if style == 2:
        return "\n".join(f"{k}: {v}" for k, v in record.items())
    return ", ".join(f"{k}={v}" for k, v in record.items())


def plain_document(r: random.Random) -> str:
    """A sentence, then its values restated (sometimes two sentences and two records)."""
    parts = []
    for _ in range(r.choice((1, 1, 2))):
        sentence, values, keys = _fill(r, r.choice(SCENARIOS))
        parts.append(f"{sentence}\n{r.choice(_PLAIN_HEADS)} {_restate(r, values, keys)}")
    if r.random() < 0.2:
        items = r.sample(THINGS, r.randint(3, 6))
        parts.append(f"The list is {', '.join(items)}. Again: {', '.join(items)}.")
    return "\n".join(parts)


_COPY_KINDS = ("person", "city", "thing", "code", "big", "small", "color", "word", "date")


def copy_document(r: random.Random) -> str:
    """A random sequence of values, then the same sequence again: only copying predicts the
    second half, which is what makes induction heads form within a short pre-training."""
    values = [str(VALUES[r.choice(_COPY_KINDS)](r)) for _ in range(r.randint(4, 12))]
    sep = r.choice([" ", ", ", " | "])
    head, again = r.choice([("Copy:", "Again:"), ("Input:", "Output:"), ("Say:", "Said:")])
    return f"{head} {sep.join(values)}\n{again} {sep.join(values)}"


def extraction_chat(r: random.Random) -> list[dict[str, Any]]:
    scenario = r.choice(SCENARIOS)
    sentence, values, keys = _fill(r, scenario)
    record = {keys[f]: v for f, v in values.items()}
    system = r.choice(
        [f"Extract the {scenario[0]} as JSON.", f"Return the {scenario[0]} fields as JSON."]
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": sentence},
        {"role": "assistant", "content": json.dumps(record, sort_keys=True)},
    ]


def _tool(name: str, description: str, params: dict[str, str]) -> dict[str, Any]:
    props = {
        p: {"type": "integer" if k in ("small", "big") else "string"} for p, k in params.items()
    }
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": props, "required": list(params)},
        },
    }


# (tool, parameter -> value kind, user phrasings, result fields -> value kind, answer template)
ToolSpec = tuple[dict[str, Any], dict[str, str], list[str], dict[str, str], str]
TOOLS: list[ToolSpec] = [
    (_tool("get_weather", "Current weather in a city", {"city": "city"}), {"city": "city"},
     ["What is the weather in {city}?", "Is it cold in {city} today?",
      "Weather for {city}, please."],
     {"temp": "small", "sky": "color"}, "It is {temp} degrees in {city} with a {sky} sky."),
    (_tool("create_event", "Add a calendar event", {"title": "word", "day": "day", "time": "time"}),
     {"title": "word", "day": "day", "time": "time"},
     ["Put the {title} on my calendar for {day} at {time}.", "Schedule {title}, {day} {time}."],
     {"event_id": "code"}, "Done: the {title} is on {day} at {time} (event {event_id})."),
    (_tool("add_note", "Save a short note", {"text": "thing"}), {"text": "thing"},
     ["Note that we need more {text}.", "Write down: {text}."],
     {"note_id": "code"}, "Saved as note {note_id}."),
    (_tool("send_email", "Send an email", {"to": "email", "subject": "word"}),
     {"to": "email", "subject": "word"},
     ["Email {to} about the {subject}.", "Send {to} a message with subject {subject}."],
     {"status": "word"}, "I sent the {subject} email to {to}."),
    (_tool("set_reminder", "Remind the user later", {"time": "time", "about": "word"}),
     {"time": "time", "about": "word"},
     ["Remind me at {time} about the {about}.", "At {time}, remind me of the {about}."],
     {"reminder": "code"}, "I will remind you at {time} (reminder {reminder})."),
    (_tool("search_flights", "Find flights", {"origin": "city", "destination": "city",
                                              "date": "date"}),
     {"origin": "city", "destination": "city", "date": "date"},
     ["Find a flight from {origin} to {destination} on {date}.",
      "Any flights {origin} to {destination}, {date}?"],
     {"flight": "code", "price": "big"}, "Flight {flight} costs {price} dollars."),
    (_tool("book_table", "Reserve a restaurant table", {"people": "small", "time": "time",
                                                        "name": "person"}),
     {"people": "small", "time": "time", "name": "person"},
     ["Book a table for {people} at {time} under {name}.",
      "Table for {people}, {time}, name {name}."],
     {"confirmation": "code"}, "Your table is booked, confirmation {confirmation}."),
    (_tool("convert_currency", "Convert money", {"amount": "big", "to": "lang"}),
     {"amount": "big", "to": "lang"},
     ["Convert {amount} dollars to {to} money.", "How much is {amount} dollars in {to} money?"],
     {"result": "big"}, "{amount} dollars is {result} in {to} money."),
    (_tool("get_contact", "Look up a person's contact card", {"person": "person"}),
     {"person": "person"}, ["What is the email of {person}?", "Find the contact card of {person}."],
     {"email": "email", "city": "city"}, "{person} is at {email}, in {city}."),
    (_tool("translate_text", "Translate a word", {"text": "thing", "language": "lang"}),
     {"text": "thing", "language": "lang"},
     ["Translate {text} into {language}.", "How do you say {text} in {language}?"],
     {"translation": "word"}, "In {language}, {text} is {translation}."),
    (_tool("create_task", "Create a task for someone", {"title": "word", "assignee": "person",
                                                        "due": "date"}),
     {"title": "word", "assignee": "person", "due": "date"},
     ["Ask {assignee} to do the {title} by {due}.", "New task for {assignee}: {title}, due {due}."],
     {"task_id": "code"}, "Task {task_id} is assigned to {assignee}."),
    (_tool("check_stock", "Units of a product in a store", {"sku": "code", "city": "city"}),
     {"sku": "code", "city": "city"},
     ["Is {sku} in stock in {city}?", "How many {sku} are left in the {city} store?"],
     {"units": "big"}, "The {city} store has {units} units of {sku}."),
    (_tool("rate_movie", "Rate a film", {"title": "word", "stars": "small"}),
     {"title": "word", "stars": "small"},
     ["Give the film {title} {stars} stars.", "Rate {title} with {stars} stars."],
     {"average": "small"}, "Rated. {title} now averages {average} stars."),
]  # fmt: skip

_TEXT_TURNS = [
    ("Hi!", "Hello! How can I help you today?"),
    ("Hello there.", "Hi! What can I do for you?"),
    ("Thanks a lot.", "You are welcome!"),
    ("Who are you?", "I am an assistant that can use tools for you."),
    ("Good night.", "Good night!"),
]
_SYSTEMS = [
    "You are a helpful assistant.",
    "You are a careful assistant. Use the tools when they help.",
    "You help people plan their day.",
    "",
]


def _call(index: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"call_{index}",
        "type": "function",
        "function": {"name": name, "arguments": args},
    }


def tool_chat(r: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(messages, tools): a call copied from the user turn, maybe its result and a text answer."""
    specs = r.sample(TOOLS, r.randint(2, 4))
    tools = [s[0] for s in specs]
    system = r.choice(_SYSTEMS)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    kind = r.random()
    if kind < 0.12:  # a turn that needs no tool; the answer may list the tools
        question, answer = r.choice(_TEXT_TURNS)
        if r.random() < 0.4:
            question = "What can you do?"
            answer = "I can use these tools: " + ", ".join(t["function"]["name"] for t in tools)
        messages += [{"role": "user", "content": question},
                     {"role": "assistant", "content": answer}]  # fmt: skip
        return messages, tools
    spec = r.choice(specs)
    n_calls = 2 if kind < 0.3 else 1  # parallel: the same tool for two sets of values
    asks, calls, all_values = [], [], []
    for i in range(n_calls):
        values = {p: VALUES[k](r) for p, k in spec[1].items()}
        all_values.append(values)
        asks.append(r.choice(spec[2]).format(**values))
        calls.append(_call(i + 1, spec[0]["function"]["name"], values))
    user = " ".join(asks) if n_calls == 1 else f"{asks[0]} Also: {asks[1]}"
    messages += [{"role": "user", "content": user},
                 {"role": "assistant", "content": "", "tool_calls": calls}]  # fmt: skip
    if r.random() < 0.5:
        return messages, tools
    answers = []
    for call, values in zip(calls, all_values, strict=True):
        result = {f: VALUES[k](r) for f, k in spec[3].items()}
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)})
        answers.append(spec[4].format(**values, **result))
    messages.append({"role": "assistant", "content": " ".join(answers)})
    return messages, tools


def documents(render: Render, *, seed: int = 0) -> Iterator[str]:
    """An endless stream of documents: restatements, extraction chats and tool chats."""
    r = random.Random(f"loraplex-pretrain:{seed}")
    while True:
        pick = r.random()
        if pick < 0.4:
            yield copy_document(r)
        elif pick < 0.55:
            yield plain_document(r)
        elif pick < 0.7:
            yield render(extraction_chat(r), None)
        else:
            messages, tools = tool_chat(r)
            yield render(messages, tools)
