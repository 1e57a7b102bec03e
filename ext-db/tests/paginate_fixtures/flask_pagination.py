"""Writes flask_pagination.json: what Flask-SQLAlchemy 3.1's `db.paginate` and
`Pagination.iter_pages` return for a table of cases, which tests/paginate_flask.rs checks
Flagon's `paginate` against.

    python3 -m venv /tmp/fsa && /tmp/fsa/bin/pip install flask-sqlalchemy==3.1.1
    /tmp/fsa/bin/python flask_pagination.py > flask_pagination.json
"""

import itertools
import json
from importlib.metadata import version

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.pagination import Pagination
from werkzeug.exceptions import NotFound

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
db = SQLAlchemy(app)


class Item(db.Model):
    id = db.Column(db.Integer, primary_key=True)


TOTALS = [0, 1, 7, 20, 21, 95, 203]
# iter_pages needs a count (without one there are no pages), so only counted cases record it.
PER_PAGE = [None, 1, 3, 10, 20, 40]
# (max_per_page, error_out, count)
OPTIONS = [(None, True, True), (None, False, True), (None, True, False), (7, True, True),
           (7, False, True), (100, False, False)]
ITER_ARGS = [(2, 2, 4, 2), (0, 0, 0, 0), (1, 1, 1, 1), (3, 0, 2, 1), (0, 3, 0, 3), (1, 5, 5, 1)]


def widget(p):
    return {
        ",".join(map(str, args)): list(p.iter_pages(
            left_edge=args[0], left_current=args[1], right_current=args[2], right_edge=args[3]
        ))
        for args in ITER_ARGS
    }


def pages_to_try(total, per_page):
    size = per_page or 20
    last = max(1, -(-total // size))
    return sorted({0, 1, 2, 5, 7, last, last + 1})


cases = []
with app.app_context():
    db.create_all()
    for total in TOTALS:
        db.session.query(Item).delete()
        db.session.add_all([Item(id=i) for i in range(1, total + 1)])
        db.session.commit()
        select = db.select(Item).order_by(Item.id)
        for per_page, (max_per_page, error_out, count) in itertools.product(PER_PAGE, OPTIONS):
            for page in pages_to_try(total, per_page):
                case = {
                    "rows": total,
                    "page": page,
                    "per_page": per_page,
                    "max_per_page": max_per_page,
                    "error_out": error_out,
                    "count": count,
                }
                try:
                    p = db.paginate(
                        select,
                        page=page,
                        per_page=per_page,
                        max_per_page=max_per_page,
                        error_out=error_out,
                        count=count,
                    )
                except NotFound:
                    case["result"] = 404
                    cases.append(case)
                    continue
                case["result"] = {
                    "page": p.page,
                    "per_page": p.per_page,
                    "total": p.total,
                    # The ids are 1..rows in order, so a page's items are a run: [first id, last id].
                    "items": [p.items[0].id, p.items[-1].id] if p.items else [],
                    "first": p.first,
                    "last": p.last,
                    "pages": p.pages,
                    "has_prev": p.has_prev,
                    "prev_num": p.prev_num,
                    "has_next": p.has_next,
                    "next_num": p.next_num,
                    "iter_pages": widget(p) if count else {},
                }
                cases.append(case)

print(json.dumps({"flask_sqlalchemy": version("flask-sqlalchemy"), "cases": cases}, indent=None, separators=(",", ":")))
