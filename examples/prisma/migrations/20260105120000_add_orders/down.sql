DROP TABLE "Order";
