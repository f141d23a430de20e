ALTER TABLE "Order" DROP COLUMN "status";
DROP TYPE "OrderStatus";
