-- Runs outside a transaction: pgward-migrate applies this file statement by statement.
CREATE INDEX CONCURRENTLY "Order_createdAt_idx" ON "Order"("createdAt");
