"""The pre-trade gate on Postgres as one function: one statement, one round trip per trade.

ops.trading.gate.submit_trade() calls ops_submit_trade() in autocommit, so the call is
its own transaction: no BEGIN, no SAVEPOINT, no COMMIT of its own. An API order calls it
from the statement that also finds the order's API client by its token
(gate.submit_trade_from()): one round trip in all. Each statement in a
VOLATILE plpgsql function takes a fresh snapshot, so the state is read after the
position lock is granted, exactly as the ORM path (SQLite) does it in several
statements: lock the position first, then read the state, then insert. The rule it
applies is ops.trading.gate.check()'s, written in the same shape;
ops/tests/test_trading_gate_postgres.py runs both over the same cases.

It answers one row: `outcome` ('created', 'recorded': the client_order_id is already
taken, or 'refused'), the effective state and position it judged (for the refusal's
wording, which check() writes), and the trade's row (NULL when refused).
"""

from django.db import migrations

FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION ops_submit_trade(
    p_client_order_id varchar, p_symbol varchar, p_side varchar, p_quantity numeric, p_price numeric,
    p_strategy varchar, p_executed_at timestamptz, p_now timestamptz, p_api_client_id bigint,
    p_scopes varchar[]  -- ops.trading.scopes.trade_scopes(): broadest first, the tie-breaker
) RETURNS TABLE (
    outcome text, gate_state varchar, gate_scope varchar, gate_reason text, gate_since timestamptz,
    position_quantity numeric,
    id bigint, client_order_id varchar, symbol varchar, side varchar, quantity numeric, price numeric,
    strategy varchar, executed_at timestamptz, created_at timestamptz, api_client_id bigint
) LANGUAGE plpgsql VOLATILE AS $$
-- The output columns share names with table columns; in a query, a name means the column.
#variable_conflict use_column
DECLARE
    trade_id bigint;
    position_id bigint;
    new_position boolean := false;
    delta numeric := CASE WHEN p_side = 'buy' THEN p_quantity ELSE -p_quantity END;
    after numeric;
BEGIN
    -- Already recorded (before any halt, say): a retry gets it back whatever the state
    -- now, and takes no lock.
    SELECT t.id INTO trade_id FROM ops_trade t WHERE t.client_order_id = p_client_order_id;
    IF FOUND THEN
        outcome := 'recorded';
    ELSE
        -- Position first, then the counter row (the insert's trigger): every trade path
        -- locks in this order, so no two can deadlock. A new position is created and so
        -- locked; a concurrent first trade's row is waited for and locked.
        SELECT p.id, p.quantity INTO position_id, position_quantity
          FROM ops_position p WHERE p.strategy = p_strategy AND p.symbol = p_symbol FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO ops_position (strategy, symbol, quantity, updated_at)
                 VALUES (p_strategy, p_symbol, 0, p_now)
            ON CONFLICT (strategy, symbol) DO NOTHING;
            new_position := FOUND;
            SELECT p.id, p.quantity INTO position_id, position_quantity
              FROM ops_position p WHERE p.strategy = p_strategy AND p.symbol = p_symbol FOR UPDATE;
        END IF;

        -- The state, read after the lock was granted (this statement's own snapshot): a
        -- halt that committed while we waited is seen. The most restrictive scope wins,
        -- ties go to the broadest; a plain read, no share lock, so a halt never waits on us.
        SELECT s.state, s.scope, s.reason, s.since INTO gate_state, gate_scope, gate_reason, gate_since
          FROM ops_tradingstate s
         WHERE s.scope = ANY (p_scopes)
         ORDER BY CASE s.state WHEN 'HALTED' THEN 2 WHEN 'REDUCING' THEN 1 ELSE 0 END DESC,
                  array_position(p_scopes, s.scope)
         LIMIT 1;
        IF NOT FOUND OR gate_state = 'ACTIVE' THEN
            gate_state := 'ACTIVE'; gate_scope := 'global'; gate_reason := ''; gate_since := NULL;
        END IF;

        -- check(): HALTED refuses everything; REDUCING takes a trade only if it brings the
        -- position toward zero without passing it.
        after := position_quantity + delta;
        IF gate_state = 'HALTED' OR (gate_state = 'REDUCING' AND NOT (
               position_quantity <> 0 AND abs(after) < abs(position_quantity)
               AND (after = 0 OR (after > 0) = (position_quantity > 0)))) THEN
            -- An identical request may have committed while we waited for the lock: it
            -- is this order, already recorded, and is not refused as a new one.
            SELECT t.id INTO trade_id FROM ops_trade t WHERE t.client_order_id = p_client_order_id;
            outcome := CASE WHEN FOUND THEN 'recorded' ELSE 'refused' END;
        ELSE
            -- The unique index answers "already recorded?" for a request that raced us.
            INSERT INTO ops_trade (client_order_id, symbol, side, quantity, price, strategy,
                                   executed_at, created_at, api_client_id)
                 VALUES (p_client_order_id, p_symbol, p_side, p_quantity, p_price, p_strategy,
                         p_executed_at, p_now, p_api_client_id)
            ON CONFLICT (client_order_id) DO NOTHING
            RETURNING ops_trade.id INTO trade_id;
            IF FOUND THEN
                UPDATE ops_position p SET quantity = p.quantity + delta WHERE p.id = position_id;
                outcome := 'created';
            ELSE
                SELECT t.id INTO trade_id FROM ops_trade t WHERE t.client_order_id = p_client_order_id;
                outcome := 'recorded';
            END IF;
        END IF;

        -- An order that recorded nothing leaves nothing behind, not even an empty position.
        IF outcome <> 'created' AND new_position THEN
            DELETE FROM ops_position p WHERE p.id = position_id;
        END IF;
    END IF;

    RETURN QUERY
        SELECT outcome, gate_state, gate_scope, gate_reason, gate_since, position_quantity,
               t.id, t.client_order_id, t.symbol, t.side, t.quantity, t.price, t.strategy,
               t.executed_at, t.created_at, t.api_client_id
          FROM (SELECT 1) AS one LEFT JOIN ops_trade t ON t.id = trade_id;
END $$
"""


def install(apps, schema_editor):
    # SQLite has no stored functions: there the gate runs as ORM statements in Python.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION_SQL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "DROP FUNCTION IF EXISTS ops_submit_trade(varchar, varchar, varchar, numeric, numeric, varchar, "
            "timestamptz, timestamptz, bigint, varchar[])"
        )


class Migration(migrations.Migration):
    dependencies = [("ops", "0011_fill_bookings")]

    operations = [migrations.RunPython(install, uninstall)]
